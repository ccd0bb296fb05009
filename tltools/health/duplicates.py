"""Exact and near duplicates: the same bytes, or features almost identical.

Exact duplicates share the SHA-1 of their file bytes (computed when the dataset
was checked). Near duplicates are pairs whose L2-normalised backbone features
have a cosine similarity of at least :data:`NEAR_THRESHOLD`: re-encoded,
resized or slightly cropped copies of one picture. Pairs are joined into
groups (an image near two others is one group of three). A group whose images
carry different labels is a label conflict and one spread over several splits
is leakage (evaluation on a split that shares pictures with training
overstates accuracy); both are listed first.
"""

import dataclasses

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Cosine similarity from which two images count as the same picture. Calibrated on flowers12 with
# efficientnet_lite0 features: JPEG quality-70 and 0.8x resized copies score at least 0.96 with their
# originals, the most similar distinct photos at most 0.92 (README, Data health).
NEAR_THRESHOLD = 0.95
_BLOCK = 1024


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
    """Images that are one picture.

    Attributes:
        indices: Their rows in the analysed table.
        kind: ``"exact"`` (identical bytes) or ``"near"`` (at least one pair only similar).
        similarity: The lowest cosine similarity of a joined pair (1.0 for exact copies).
        label_conflict: The copies carry different labels.
        leakage: The copies sit in more than one split.
    """

    indices: tuple[int, ...]
    kind: str
    similarity: float
    label_conflict: bool
    leakage: bool


def similar_pairs(features: np.ndarray, threshold: float = NEAR_THRESHOLD) -> list[tuple[int, int, float]]:
    """Return ``(i, j, similarity)`` for every pair ``i < j`` of L2-normalised rows at least ``threshold`` alike."""
    pairs = []
    for start in range(0, len(features), _BLOCK):
        block = features[start:start + _BLOCK] @ features.T
        rows, cols = np.nonzero(block >= threshold)
        for row, col in zip(rows, cols):
            i = start + int(row)
            if i < col:
                pairs.append((i, int(col), float(block[row, col])))
    return pairs


def find_duplicates(table: pd.DataFrame, features: np.ndarray, *,
                    threshold: float = NEAR_THRESHOLD) -> list[DuplicateGroup]:
    """Return the groups of exact and near duplicates, label conflicts and leakage first.

    Args:
        table: One row per image with ``sha1``, ``label`` and ``split`` columns, in ``features``' order.
        features: (images, size) L2-normalised features.
        threshold: Cosine similarity from which a pair is a near duplicate.
    """
    sha1 = table["sha1"].to_numpy()
    pairs = {(i, j): s for i, j, s in similar_pairs(features, threshold)}
    first = {}
    for index, digest in enumerate(sha1):
        if digest in first:
            pairs[(first[digest], index)] = 1.0
        else:
            first[digest] = index
    if not pairs:
        return []
    rows, cols = np.array(list(pairs)).T
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(table), len(table)))
    _, component = connected_components(graph, directed=False)
    labels, splits = table["label"].to_numpy(), table["split"].to_numpy()
    groups = []
    for members in pd.Series(np.arange(len(table))).groupby(component):
        indices = tuple(int(i) for i in members[1])
        if len(indices) < 2:
            continue
        within = [s for (i, j), s in pairs.items() if i in indices and j in indices]
        exact = len(set(sha1[list(indices)])) == 1
        groups.append(DuplicateGroup(
            indices, "exact" if exact else "near", round(float(min(within)), 4),
            len(set(labels[list(indices)])) > 1, len(set(splits[list(indices)])) > 1))
    return sorted(groups, key=lambda g: (not g.label_conflict, not g.leakage, g.kind != "exact", -g.similarity,
                                         g.indices))
