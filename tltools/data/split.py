"""Reproducible, stratified train/val/test assignment.

Splits are made per class (a seeded shuffle, then the first ``round(n * f)``
images of each class), so that every class with at least two images appears
in both train and val even when it is tiny. scikit-learn's stratified splitters
refuse or drop classes in that case, which is the common case for the small
datasets people upload here.
"""

import numbers

import numpy as np

from tltools.errors import TLToolsError

SPLITS = ("train", "val", "test")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise TLToolsError unless both fractions are numbers in [0, 1) that leave images to train on."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TLToolsError(f"{name}={value!r} must be a number between 0 and 1 (e.g. 0.2)")
        if not 0.0 <= value < 1.0:
            raise TLToolsError(f"{name}={value} must be between 0 and 1 (e.g. 0.2)")
    if val_fraction + test_fraction >= 0.9:
        raise TLToolsError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:.2f} leaves too few images "
            "to train on; keep the sum below 0.9"
        )


def check_split_settings(val_fraction: float, test_fraction: float, seed: int) -> None:
    """Raise TLToolsError unless the fractions pass :func:`check_fractions` and ``seed`` is an integer >= 0."""
    check_fractions(val_fraction, test_fraction)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise TLToolsError(f"seed={seed!r} must be a whole number of at least 0 (e.g. 42)")


def assign_splits(
    labels: list[str], given: list[str | None], *, val_fraction: float, test_fraction: float, seed: int
) -> list[str]:
    """Return a split name for every image.

    Images whose split is given keep it; the rest form the training pool.
    A split that no image is given (val, or test when ``test_fraction`` > 0)
    is carved out of the training pool, class by class.

    Args:
        labels: Class name of each image.
        given: ``"train"``, ``"val"``, ``"test"`` or None for each image.
        val_fraction: Share of each class's pool moved to val when val is not given.
        test_fraction: Share of each class's pool moved to test when test is not given.
        seed: Seed of the shuffle; the same inputs and seed give the same splits.

    Returns:
        One of ``"train"``, ``"val"``, ``"test"`` per image, in input order.

    Raises:
        TLToolsError: A fraction is out of range, or the seed is not an integer >= 0.
    """
    check_split_settings(val_fraction, test_fraction, seed)
    splits = [split or "train" for split in given]
    present = set(splits)
    carve = {  # val first: a class too small for both keeps its val image rather than its test image
        "val": val_fraction if "val" not in present else 0.0,
        "test": test_fraction if "test" not in present else 0.0,
    }
    pools: dict[str, list[int]] = {label: [] for label in labels}  # each class's training pool, in input order
    for index, (label, split) in enumerate(zip(labels, splits)):
        if split == "train":
            pools[label].append(index)
    rng = np.random.default_rng(seed)
    for label in sorted(pools):
        pool = pools[label]
        rng.shuffle(pool)
        start = 0
        for split, fraction in carve.items():
            count = _share(len(pool), fraction, left=len(pool) - start)
            for index in pool[start : start + count]:
                splits[index] = split
            start += count
    return splits


def _share(size: int, fraction: float, *, left: int) -> int:
    """Images of a class pool of ``size`` to move: at least one when asked, never the last one."""
    if fraction <= 0.0 or left <= 1:
        return 0
    return min(max(1, round(size * fraction)), left - 1)
