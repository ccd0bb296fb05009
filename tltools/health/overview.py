"""The class overview: which class pairs the out-of-fold predictions confuse, and each class's label quality."""

import numpy as np


def confused_pairs(labels: np.ndarray, probabilities: np.ndarray, classes: list[str], *, top: int = 10) -> list[dict]:
    """Return the class pairs most often mistaken for each other out of fold, most confused first.

    Args:
        labels: Given class index per image.
        probabilities: Out-of-fold probabilities (images, classes).
        classes: Class names.
        top: Most pairs returned.

    Returns:
        ``{"classes": [a, b], "count": n, "a_as_b": .., "b_as_a": ..}`` per pair with at least one confusion.
    """
    predicted = np.argmax(probabilities, axis=1)
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(matrix, (np.asarray(labels), predicted), 1)
    pairs = []
    for a in range(len(classes)):
        for b in range(a + 1, len(classes)):
            if matrix[a, b] + matrix[b, a]:
                pairs.append({"classes": [classes[a], classes[b]], "count": int(matrix[a, b] + matrix[b, a]),
                              "a_as_b": int(matrix[a, b]), "b_as_a": int(matrix[b, a])})
    return sorted(pairs, key=lambda pair: (-pair["count"], pair["classes"]))[:top]


def class_quality(labels: np.ndarray, scores: np.ndarray, flagged: list[int], classes: list[str]) -> list[dict]:
    """Return per class: images, mean label quality (0..1) and how many were flagged as likely mislabelled.

    Args:
        labels: Given class index per image.
        scores: Label quality per image (:func:`tltools.health.label_issues.label_quality`).
        flagged: Indices of the images flagged as label issues.
        classes: Class names.

    Returns:
        One dict per class, lowest mean quality first.
    """
    labels = np.asarray(labels)
    issues = np.bincount(labels[list(flagged)], minlength=len(classes)) if flagged else np.zeros(len(classes), int)
    rows = []
    for index, name in enumerate(classes):
        members = labels == index
        if members.any():
            rows.append({"class": name, "images": int(members.sum()),
                         "label_quality": round(float(scores[members].mean()), 4), "issues": int(issues[index])})
    return sorted(rows, key=lambda row: (row["label_quality"], row["class"]))
