"""Classification metrics of predicted probabilities, as plain JSON-friendly values.

:func:`classification_metrics` turns true labels and predicted probabilities
into one dict (accuracy, loss, top-k, per-class precision/recall/F1/AUC,
confusion matrix, ROC curves, calibration error, the misclassified images);
scikit-learn computes every metric it has. :func:`per_class_table` lays the
per-class part out as a table for the app.
"""

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
    top_k_accuracy_score,
)

ECE_BINS = 15
# Probabilities are clipped to [EPSILON, 1 - EPSILON] in the loss, as Keras' cross-entropy does.
EPSILON = 1e-7
PER_CLASS_COLUMNS = ["class", "precision", "recall", "f1", "support", "auc"]


def classification_metrics(y_true, probs, class_names, *, top_k: int = 5, paths=None) -> dict:
    """Compute every evaluation metric of one set of predictions.

    Args:
        y_true: True class indices, shape (N,).
        probs: Predicted probabilities, shape (N, C), one column per class.
        class_names: The C class names, in column order.
        top_k: k of the top-k accuracy, at least 1; capped at C.
        paths: Optional image names (N of them), reported with the misclassified images.

    Returns:
        A dict of plain Python values:

        - ``num_images``: N.
        - ``loss``: mean categorical cross-entropy, probabilities clipped to
          [1e-7, 1 - 1e-7] as Keras' own loss clips them.
        - ``accuracy``; ``top_k`` (the k used) and ``top_k_accuracy``.
        - ``per_class``: ``{class: {precision, recall, f1, support, auc}}``
          from scikit-learn's ``classification_report`` (0 where undefined);
          ``auc`` is the class's one-vs-rest ROC AUC, None when the class is
          absent from ``y_true`` (or is all of it).
        - ``macro_f1``, ``weighted_f1``.
        - ``confusion_matrix``: C x C counts, rows = true class, columns = predicted.
        - ``roc_auc``: macro one-vs-rest ROC AUC, None when any class's AUC is undefined.
        - ``roc_curves``: ``{class: {"fpr": [...], "tpr": [...]}}``, None for
          classes whose AUC is undefined.
        - ``ece``: expected calibration error, see :func:`expected_calibration_error`.
        - ``misclassified``: ``[{index, path?, true, predicted, confidence}]``,
          most confident mistakes first.

    Raises:
        ValueError: If ``top_k`` is below 1, the shapes disagree, a label is
            out of range, there are no predictions, or ``probs`` holds
            negative or non-finite values.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k!r} must be at least 1")
    num_classes = len(class_names)
    k = min(int(top_k), num_classes)
    y_true, probs = _checked(y_true, probs, class_names, paths)
    y_pred = probs.argmax(axis=1)
    # Indices as target names: a class called "accuracy" or "macro avg" cannot clash with the summary rows.
    report = classification_report(
        y_true, y_pred, labels=range(num_classes), target_names=[str(i) for i in range(num_classes)],
        output_dict=True, zero_division=0,
    )
    aucs = [_class_auc(y_true, probs, c) for c in range(num_classes)]
    return {
        "num_images": int(len(y_true)),
        "loss": cross_entropy(y_true, probs),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "top_k": k,
        "top_k_accuracy": _top_k_accuracy(y_true, probs, k),
        "per_class": {name: _class_report(report[str(c)], aucs[c]) for c, name in enumerate(class_names)},
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=range(num_classes)).tolist(),
        "roc_auc": _macro_auc(y_true, probs, aucs),
        "roc_curves": {name: _roc_curve(y_true, probs, c, aucs[c]) for c, name in enumerate(class_names)},
        "ece": expected_calibration_error(y_true, probs),
        "misclassified": _misclassified(y_true, probs, class_names, paths),
    }


def cross_entropy(y_true, probs) -> float:
    """Return the mean categorical cross-entropy, probabilities clipped as Keras clips them."""
    true_probs = np.clip(probs[np.arange(len(y_true)), y_true], EPSILON, 1.0 - EPSILON)
    return float(-np.mean(np.log(true_probs)))


def expected_calibration_error(y_true, probs, *, bins: int = ECE_BINS) -> float:
    """Return the expected calibration error (ECE) of the top-1 predictions.

    Each prediction's confidence is its largest probability. Confidences are
    put into ``bins`` equal-width bins ``(0, 1/bins], (1/bins, 2/bins], ...``;
    ECE is the average, over bins weighted by their share of the images, of
    ``|accuracy in the bin - mean confidence in the bin|`` (Guo et al., 2017).
    0 means perfectly calibrated; an overconfident model scores high.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def per_class_table(metrics: dict) -> pd.DataFrame:
    """Return the per-class metrics as a table for display.

    Args:
        metrics: A result of :func:`classification_metrics`.

    Returns:
        One row per class, columns ``class, precision, recall, f1, support, auc``.
    """
    rows = [{"class": name, **values} for name, values in metrics["per_class"].items()]
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def _checked(y_true, probs, class_names, paths) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and row-normalised float64 probabilities after checking they fit together."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"probs must have shape (N, {num_classes}) for {num_classes} classes; got {probs.shape}")
    if y_true.shape != (len(probs),):
        raise ValueError(f"y_true must have shape ({len(probs)},) to match probs; got {y_true.shape}")
    if len(probs) == 0:
        raise ValueError("no predictions to evaluate")
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= num_classes:
        raise ValueError(f"y_true must hold class indices in 0..{num_classes - 1}; got {y_true.min()}..{y_true.max()}")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs.sum(axis=1) <= 0).any():
        raise ValueError("probs must be probabilities: finite, non-negative, not all zero in a row")
    if paths is not None and len(paths) != len(probs):
        raise ValueError(f"{len(paths)} paths given for {len(probs)} predictions")
    return y_true, probs / probs.sum(axis=1, keepdims=True)


def _scores(probs: np.ndarray) -> np.ndarray:
    """Return scores shaped as scikit-learn wants them: the positive column for 2 classes."""
    return probs[:, 1] if probs.shape[1] == 2 else probs


def _top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the k most probable; 1 when k covers every class."""
    num_classes = probs.shape[1]
    if k >= num_classes:
        return 1.0
    return float(top_k_accuracy_score(y_true, _scores(probs), k=k, labels=range(num_classes)))


def _class_report(entry: dict, auc: float | None) -> dict:
    return {
        "precision": float(entry["precision"]),
        "recall": float(entry["recall"]),
        "f1": float(entry["f1-score"]),
        "support": int(entry["support"]),
        "auc": auc,
    }


def _auc_defined(y_true: np.ndarray, c: int) -> bool:
    """One-vs-rest AUC of class ``c`` needs both its images and others."""
    present = int((y_true == c).sum())
    return 0 < present < len(y_true)


def _class_auc(y_true: np.ndarray, probs: np.ndarray, c: int) -> float | None:
    if not _auc_defined(y_true, c):
        return None
    return float(roc_auc_score(y_true == c, probs[:, c]))


def _macro_auc(y_true: np.ndarray, probs: np.ndarray, aucs: list) -> float | None:
    if any(auc is None for auc in aucs):
        return None
    num_classes = probs.shape[1]
    return float(roc_auc_score(y_true, _scores(probs), multi_class="ovr", average="macro", labels=range(num_classes)))


def _roc_curve(y_true: np.ndarray, probs: np.ndarray, c: int, auc: float | None) -> dict | None:
    if auc is None:
        return None
    fpr, tpr, _ = roc_curve(y_true == c, probs[:, c])
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def _misclassified(y_true: np.ndarray, probs: np.ndarray, class_names, paths) -> list[dict]:
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]]
    entries = []
    for index, conf in sorted(zip(wrong.tolist(), confidence.tolist()), key=lambda pair: -pair[1]):
        entry = {"index": index}
        if paths is not None:
            entry["path"] = str(paths[index])
        entry.update(true=class_names[y_true[index]], predicted=class_names[y_pred[index]], confidence=conf)
        entries.append(entry)
    return entries
