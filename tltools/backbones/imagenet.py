"""ImageNet-1k class names and top-k decoding of 1000-class predictions.

``imagenet_classes.txt`` holds one human-readable name per line in class
index order 0..999 (the first WordNet lemma of each synset, e.g. 0 "tench",
281 "tabby", 967 "espresso"). Two names occur twice because their synsets
share a lemma: "crane" (134 bird, 517 machine) and "maillot" (638, 639).
"""

import functools
import importlib.resources

import numpy as np

from tltools.errors import TLToolsError

NUM_CLASSES = 1000


@functools.cache
def _class_names() -> tuple[str, ...]:
    """Read the shipped class-name file once."""
    text = (importlib.resources.files(__package__) / "imagenet_classes.txt").read_text("utf-8")
    names = tuple(text.splitlines())
    if len(names) != NUM_CLASSES:
        raise TLToolsError(
            f"imagenet_classes.txt has {len(names)} names instead of {NUM_CLASSES}; "
            "reinstall tltools"
        )
    return names


def imagenet_class_names() -> list[str]:
    """Return the 1000 ImageNet-1k class names in class index order.

    Returns:
        A new list of 1000 strings; index ``i`` names class ``i``.

    Raises:
        TLToolsError: If the shipped name file is damaged.
    """
    return list(_class_names())


def decode_top_k(probs: np.ndarray, k: int = 5) -> list[list[dict]]:
    """Return the ``k`` most probable ImageNet classes of each prediction.

    Args:
        probs: Scores of shape ``(N, 1000)``, or ``(1000,)`` for one image
            (probabilities or logits; only the order matters for ranking).
        k: How many classes to return per image, 1..1000.

    Returns:
        One list per image of ``k`` dicts ``{"index": int, "label": str,
        "prob": float}``, most probable first.

    Raises:
        TLToolsError: If ``probs`` does not have 1000 columns or ``k`` is
            out of range.
    """
    scores = np.asarray(probs)
    if scores.ndim == 1:
        scores = scores[np.newaxis]
    if scores.ndim != 2 or scores.shape[1] != NUM_CLASSES:
        raise TLToolsError(
            f"predictions of shape {np.shape(probs)} are not ImageNet scores; "
            f"expected (N, {NUM_CLASSES})"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= NUM_CLASSES:
        raise TLToolsError(f"k={k!r} is out of range; use 1..{NUM_CLASSES}")
    names = _class_names()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [
        [{"index": int(i), "label": names[i], "prob": float(row[i])} for i in indices]
        for row, indices in zip(scores, top, strict=True)
    ]
