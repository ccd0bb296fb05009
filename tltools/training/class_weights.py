"""Class weights for imbalanced training splits (scikit-learn's ``balanced`` rule)."""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

# Largest/smallest class size in the training split from which a run warns when weights are off.
IMBALANCE_WARNING_RATIO = 3.0


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Return ``{class index: weight}`` with weight ``n / (num_classes * count)``, as Keras' ``fit`` takes it.

    Classes missing from ``labels`` get weight 1.
    """
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    result = {index: 1.0 for index in range(num_classes)}
    result.update({int(index): float(weight) for index, weight in zip(present, weights)})
    return result


def imbalance_ratio(labels: np.ndarray, num_classes: int) -> float:
    """Return the largest class count divided by the smallest (of the classes present)."""
    counts = np.bincount(labels, minlength=num_classes)
    counts = counts[counts > 0]
    return float(counts.max() / counts.min())
