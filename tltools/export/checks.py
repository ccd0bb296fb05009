"""Comparing an exported model's predictions with the Keras model's, and refusing broken exports."""

import numpy as np

from tltools.errors import TLToolsError


def compare(expected: np.ndarray, actual: np.ndarray) -> dict:
    """Return how far an export's probabilities are from the Keras model's.

    Args:
        expected: The Keras model's probabilities, shape (N, classes).
        actual: The exported model's probabilities for the same images.

    Returns:
        ``{"max_prob_diff": float, "top1_agreement": float in 0..1, "images": N}``;
        ``max_prob_diff`` is NaN when either side has a non-finite value.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise TLToolsError(
            f"the export returns probabilities of shape {actual.shape} where the Keras model returns "
            f"{expected.shape}; it was not written (report this as a bug)"
        )
    difference = np.abs(expected - actual)
    finite = np.isfinite(difference).all()
    return {
        "max_prob_diff": float(difference.max()) if finite else float("nan"),
        "top1_agreement": float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1))),
        "images": int(len(expected)),
    }


def enforce(check: dict, fmt: str, tolerance: float | None) -> None:
    """Raise if an export's predictions are further from the Keras model's than ``tolerance`` allows.

    Args:
        check: The result of :func:`compare`.
        fmt: The export format, for the message.
        tolerance: Largest acceptable ``max_prob_diff``; None accepts any finite value
            (int8 is approximate by design: judge its ``top1_agreement``).

    Raises:
        TLToolsError: The export returns non-finite values or is off by more than ``tolerance``.
    """
    difference = check["max_prob_diff"]
    if np.isnan(difference):
        raise TLToolsError(f"the {fmt} export returns non-finite probabilities; it was not written")
    if tolerance is not None and difference > tolerance:
        raise TLToolsError(
            f"the {fmt} export disagrees with the Keras model: max probability difference {difference:.3g} on "
            f"{check['images']} images is over the limit {tolerance:g}; it was not written (export another "
            "format, and report this as a bug)"
        )
