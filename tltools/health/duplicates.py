"""Exact and near duplicates: the same bytes, or the same picture re-encoded, resized or lightly edited.

Exact duplicates share the SHA-1 of their file bytes (computed when the dataset
was checked). Near duplicates are found in two steps: pairs whose L2-normalised
backbone features have a cosine similarity of at least :data:`CANDIDATE_SIMILARITY`
are candidates (cheap: one matrix product), and a candidate pair is a near
duplicate when the two images' perceptual hashes (``imagehash.phash``, 64 bits of
the low-frequency DCT of the grey image) differ in at most :data:`HASH_DISTANCE`
bits. Features alone cannot tell two different photos of one subject from copies
of one photo; the hash can, and it is computed only for the images of candidate
pairs. Pairs are joined into groups (an image near two others is one group of
three). A group whose images carry different labels is a label conflict and one
spread over several splits is leakage (evaluation on a split that shares
pictures with training overstates accuracy); both are listed first.
"""

import dataclasses

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Cosine similarity of features from which a pair is checked with perceptual hashes, and the most bits the hashes
# of a near duplicate may differ in. Calibrated on flowers12 with efficientnet_lite0 features (README, Data health).
CANDIDATE_SIMILARITY = 0.90
HASH_DISTANCE = 10
_BLOCK = 1024


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
    """Images that are one picture.

    Attributes:
        indices: Their rows in the analysed table.
        kind: ``"exact"`` (identical bytes) or ``"near"`` (at least one pair only similar).
        similarity: The lowest feature cosine similarity of a joined pair (1.0 for exact copies).
        label_conflict: The copies carry different labels.
        leakage: The copies sit in more than one split.
    """

    indices: tuple[int, ...]
    kind: str
    similarity: float
    label_conflict: bool
    leakage: bool


def similar_pairs(features: np.ndarray, threshold: float = CANDIDATE_SIMILARITY) -> list[tuple[int, int, float]]:
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


def perceptual_hash(path) -> imagehash.ImageHash | None:
    """Return the image's 64-bit perceptual hash, or None when it cannot be read now."""
    try:
        with Image.open(path) as image:
            return imagehash.phash(image.convert("RGB"))
    except (OSError, ValueError):
        return None


def find_duplicates(table: pd.DataFrame, features: np.ndarray, root=None, *,
                    threshold: float = CANDIDATE_SIMILARITY, hash_distance: int = HASH_DISTANCE) -> list[DuplicateGroup]:
    """Return the groups of exact and near duplicates, label conflicts and leakage first.

    Args:
        table: One row per image with ``relpath``, ``sha1``, ``label`` and ``split`` columns, in ``features``' order.
        features: (images, size) L2-normalised features.
        root: Folder the ``relpath``s are in, for the perceptual hashes; None trusts the features alone
            (a candidate pair is then a near duplicate).
        threshold: Cosine similarity from which a pair is a candidate.
        hash_distance: Most differing perceptual-hash bits of a near duplicate.
    """
    sha1 = table["sha1"].to_numpy()
    candidates = [(i, j, s) for i, j, s in similar_pairs(features, threshold) if sha1[i] != sha1[j]]
    if root is not None and candidates:
        hashes = {index: perceptual_hash(root / table["relpath"].iat[index])
                  for index in sorted({i for pair in candidates for i in pair[:2]})}
        candidates = [(i, j, s) for i, j, s in candidates if hashes[i] is not None and hashes[j] is not None
                      and hashes[i] - hashes[j] <= hash_distance]
    pairs = {(i, j): s for i, j, s in candidates}
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
