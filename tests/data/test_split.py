"""Stratified, reproducible train/val/test assignment."""

import collections
import math

import pytest

from tltools.data.split import assign_splits
from tltools.errors import TLToolsError


def _labels(per_class: dict[str, int]) -> list[str]:
    return [label for label, count in per_class.items() for _ in range(count)]


def _split(labels, given=None, *, val=0.2, test=0.0, seed=0) -> list[str]:
    given = given if given is not None else [None] * len(labels)
    return assign_splits(labels, given, val_fraction=val, test_fraction=test, seed=seed)


def _counts(labels, splits) -> collections.Counter:
    return collections.Counter(zip(labels, splits))


def test_same_seed_gives_the_same_split():
    labels = _labels({"cat": 30, "dog": 30})

    assert _split(labels, seed=3, test=0.1) == _split(labels, seed=3, test=0.1)


def test_different_seed_gives_a_different_split():
    labels = _labels({"cat": 30, "dog": 30})

    assert _split(labels, seed=3) != _split(labels, seed=4)


@pytest.mark.parametrize(("val", "test"), [(0.2, 0.0), (0.25, 0.15)])
def test_each_class_is_split_by_the_fractions(val, test):
    labels = _labels({"cat": 40, "dog": 100, "owl": 20})

    counts = _counts(labels, _split(labels, val=val, test=test))

    for label, size in (("cat", 40), ("dog", 100), ("owl", 20)):
        assert counts[(label, "val")] == round(size * val)
        assert counts[(label, "test")] == round(size * test)
        assert counts[(label, "train")] == size - round(size * val) - round(size * test)


@pytest.mark.parametrize("test", [0.0, 0.2])
@pytest.mark.parametrize("seed", range(3))
def test_every_class_reaches_train_and_val_even_with_two_images(test, seed):
    labels = _labels({"tiny": 2, "small": 3, "big": 50})

    counts = _counts(labels, _split(labels, val=0.1, test=test, seed=seed))

    for label in ("tiny", "small", "big"):
        assert counts[(label, "train")] >= 1
        assert counts[(label, "val")] >= 1


def test_given_splits_are_kept_and_a_missing_val_is_carved_from_train():
    labels = _labels({"cat": 10, "dog": 10}) + ["cat", "dog"] * 3
    given = ["train"] * 20 + ["test"] * 6

    splits = _split(labels, given, val=0.2, test=0.3)

    assert splits[20:] == ["test"] * 6  # given test images stay
    assert collections.Counter(splits[:20]) == {"train": 16, "val": 4}  # no extra test carved: test is given


def test_given_val_split_is_not_carved_again():
    labels = _labels({"cat": 10, "dog": 10})
    given = ["val" if n % 5 == 0 else "train" for n in range(20)]

    assert _split(labels, given, val=0.5) == given


def test_images_without_a_given_split_join_the_training_pool_of_a_partly_split_input():
    labels = _labels({"cat": 10, "dog": 10})
    given = ["test", "test"] + [None] * 18

    splits = _split(labels, given, val=0.2)

    assert splits[:2] == ["test", "test"]
    assert set(splits[2:]) == {"train", "val"}


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("val", "test"),
    [(-0.1, 0.0), (1.0, 0.0), (0.2, 1.5), (math.nan, 0.0), (0.5, 0.45)],
    ids=["negative", "one", "test-over-one", "nan", "sum-too-large"],
)
def test_bad_fractions_are_a_one_line_error_naming_the_value(val, test):
    with pytest.raises(TLToolsError) as raised:
        _split(_labels({"cat": 10, "dog": 10}), val=val, test=test)

    assert "fraction" in str(raised.value) and "\n" not in str(raised.value)
