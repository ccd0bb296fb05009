"""Outliers: images far from every other image in feature space (off-topic pictures, blank frames, odd files).

An image's outlier score is the mean cosine distance to its :data:`NEIGHBOURS`
nearest other images (scikit-learn's exact nearest-neighbour search on
L2-normalised features), whatever their class: a flower among flowers has close
neighbours, a photo of a car or a grey frame has none. Copies of an image
(exact or near duplicates) are not counted as its neighbours, so a pair of
identical off-topic frames still stands out. Images whose score lies far above
the others' (Tukey's fence: more than :data:`SPREAD` times the interquartile range above the
upper quartile) are reported, farthest first.
"""

import dataclasses

import numpy as np
from sklearn.neighbors import NearestNeighbors

NEIGHBOURS = 5
SPREAD = 1.5  # Tukey's fence
# Cosine similarity above which a neighbour counts as a copy of the image, not a neighbour.
_COPY = 0.95


@dataclasses.dataclass(frozen=True)
class Outlier:
    """An image far from all others.

    Attributes:
        index: Its row in the analysed arrays.
        score: Mean cosine distance to its nearest non-copy neighbours (0..2; higher is farther).
    """

    index: int
    score: float


def neighbours(features: np.ndarray, count: int, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, cosine similarities) of the ``count`` nearest other rows of each row, nearest first.

    The one nearest-neighbour search of the analysis: outlier scores and the neighbours a finding's card
    and the map show.

    Args:
        features: (images, size) L2-normalised features.
        count: Neighbours per row (at most ``images - 1``).
        rows: Row indices to find neighbours of; None for every row.

    Returns:
        Two (rows, count) arrays: neighbour indices and their cosine similarities.
    """
    count = min(count, len(features) - 1)
    rows = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=int).reshape(-1)
    search = NearestNeighbors(n_neighbors=count + 1, metric="cosine", algorithm="brute").fit(features)
    distances, indices = search.kneighbors(features[rows])
    order = np.argsort(indices != rows[:, None], axis=1, kind="stable")  # self first
    indices = np.take_along_axis(indices, order, axis=1)[:, 1:]
    distances = np.take_along_axis(distances, order, axis=1)[:, 1:]
    return indices, 1.0 - distances


def outlier_scores(features: np.ndarray, count: int = NEIGHBOURS) -> np.ndarray:
    """Return each image's mean cosine distance to its ``count`` nearest neighbours that are not its copies."""
    _, similarity = neighbours(features, min(count * 3, len(features) - 1))
    distance = np.where(similarity >= _COPY, np.nan, 1.0 - similarity)
    scores = np.empty(len(features))
    for row, values in enumerate(distance):
        kept = values[~np.isnan(values)][:count]
        scores[row] = kept.mean() if len(kept) else 1.0 - similarity[row, -1]
    return scores


def find_outliers(features: np.ndarray, *, count: int = NEIGHBOURS, spread: float = SPREAD) -> tuple[list[Outlier], np.ndarray]:
    """Return the outliers, farthest first, and every image's score.

    Args:
        features: (images, size) L2-normalised features.
        count: Neighbours averaged per image.
        spread: Interquartile ranges above the upper quartile from which an image is an outlier.
    """
    scores = outlier_scores(features, count)
    low, high = np.percentile(scores, [25, 75])
    cut = high + spread * (high - low)
    flagged = np.flatnonzero(scores > cut)
    return [Outlier(int(i), float(scores[i])) for i in flagged[np.argsort(-scores[flagged], kind="stable")]], scores
