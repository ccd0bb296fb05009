"""Reproducible, stratified train/val/test assignment.

Splits are made per class (a seeded shuffle, then the first ``round(n * f)``
images of each class), so that every class with at least two images appears
in both train and val even when it is tiny. scikit-learn's stratified splitters
refuse or drop classes in that case, which is the common case for the small
datasets people upload here.
"""

import numpy as np
import pydantic
from pydantic import Field

from tltools.checked import Checked, allowed
from tltools.errors import TLToolsError

SPLITS = ("train", "val", "test")
# The largest share of a class that val and test together may take (the rest trains).
MAX_HELD_OUT = 0.85


class SplitSettings(Checked):
    """How the splits the data does not give are drawn: the one declaration of these settings.

    :class:`tltools.training.TrainConfig` derives from it, so a run's config is where
    the split settings live; a :class:`tltools.data.Dataset` records the settings its
    split was drawn with.

    Attributes:
        val_fraction: Share of each class moved to val when the data has no val split.
        test_fraction: Share of each class held out for testing when the data has no test split.
        seed: Seed of the split's shuffle (and of a run's other random draws).
    """

    val_fraction: float = Field(0.2, ge=0.0, le=MAX_HELD_OUT,
                                description="share of each class for validation when the data has no val split")
    test_fraction: float = Field(0.0, ge=0.0, le=MAX_HELD_OUT,
                                 description="share of each class held out for testing when the data has no test split")
    seed: int = Field(42, ge=0, le=2**31 - 1,
                      description="seed of the split, the shuffle, augmentation and weight init")

    @pydantic.model_validator(mode="after")
    def _leave_images_to_train_on(self):
        total = self.val_fraction + self.test_fraction
        if total > MAX_HELD_OUT + 1e-9:
            raise ValueError(f"val_fraction + test_fraction = {total:.2f} leaves too few images to train on; "
                             f"keep the sum at most {MAX_HELD_OUT}")
        return self

    @property
    def split_settings(self) -> "SplitSettings":
        """Just the split settings (of a config, say), e.g. to compare with a dataset's."""
        return SplitSettings(val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed)


def check_split_settings(val_fraction: float, test_fraction: float, seed: int) -> SplitSettings:
    """Return the settings as a :class:`SplitSettings`.

    Raises:
        TLToolsError: A fraction is out of range, the two leave too little to train on, or the
            seed is not a whole number >= 0 (one line naming the setting and what is allowed).
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction), ("seed", seed)):
        if isinstance(value, bool):  # pydantic would read True as 1
            raise TLToolsError(f"{name}={value!r} is not allowed; use {allowed(SplitSettings, name)}")
    return SplitSettings(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)


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
