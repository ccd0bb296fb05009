"""The head search on its own, on generated feature vectors: seeding, trial 0, k-fold, records."""

import numpy as np
import pytest

from tltools.auto.search import PARAMS, FeatureSplits, HeadSearch, folds

DEFAULT = {"backbone": "fake", "learning_rate": 1e-3, "optimizer": "adam", "weight_decay": 1e-4, "dropout": 0.2,
           "label_smoothing": 0.0, "dense_units": 0, "class_weights": "off"}


def _features(seed=0, per_class=(30, 12), classes=3, size=32, spread=2.5):
    """Gaussian clusters: rows 0.. are train, then val; returns FeatureSplits."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, size))
    train_labels = np.repeat(np.arange(classes), per_class[0])
    val_labels = np.repeat(np.arange(classes), per_class[1])
    labels = np.concatenate([train_labels, val_labels])
    features = (centres[labels] + rng.normal(0, spread, (len(labels), size))).astype(np.float32)
    rows = {"train": np.arange(len(train_labels)), "val": np.arange(len(train_labels), len(labels))}
    return FeatureSplits({"fake": features}, rows, {"train": train_labels, "val": val_labels}, classes)


def _search(seed, trials=4):
    search = HeadSearch(_features(), seed=seed, default=DEFAULT, default_schedule=(5, 2), schedule=(25, 5),
                        batch_size=16, kfold_below=0)
    for _ in range(trials):
        search.run_trial()
    return search


@pytest.mark.slow
def test_same_seed_gives_the_same_trials_and_choice_and_another_seed_does_not():
    first, again, other = _search(seed=3), _search(seed=3), _search(seed=4)

    def summary(search):
        return [(record.params, record.score, record.state) for record in search.records]

    assert summary(first) == summary(again)
    assert first.best().number == again.best().number
    assert [r.params for r in first.records[1:]] != [r.params for r in other.records[1:]]


@pytest.mark.slow
def test_trial_zero_is_the_default_head_with_its_own_schedule_and_every_trial_is_recorded():
    search = _search(seed=0, trials=3)
    zero = search.records[0]
    assert {name: zero.params[name] for name in PARAMS if name in zero.params} == {
        name: value for name, value in DEFAULT.items() if name != "weight_decay"}  # adam: no weight decay searched
    assert (zero.epoch_cap, zero.patience) == (5, 2) and zero.epochs <= 5
    assert all((record.epoch_cap, record.patience) == (25, 5) for record in search.records[1:])
    assert [record.number for record in search.records] == [0, 1, 2]
    assert search.best().score >= zero.score
    row = search.records[1].row()
    assert set(PARAMS) <= set(row) and {"val_accuracy", "seconds", "state", "chosen"} <= set(row)


def test_small_validation_scores_by_stratified_k_fold_over_train_and_val_only():
    labels = {"train": np.repeat([0, 1], 8), "val": np.array([0, 0, 1, 1])}

    pairs = folds(labels, kfold_below=100, seed=0)
    assert len(pairs) == 5  # smallest class has 10 images in train+val
    for train, val in pairs:
        assert not set(train) & set(val) and len(train) + len(val) == 20
        assert set(np.concatenate([labels["train"], labels["val"]])[val]) == {0, 1}
    assert sorted(np.concatenate([val for _, val in pairs])) == list(range(20))

    given = folds(labels, kfold_below=4, seed=0)
    assert len(given) == 1 and list(given[0][1]) == [16, 17, 18, 19]
    single = folds({"train": np.array([0, 1, 1]), "val": np.array([1])}, kfold_below=100, seed=0)
    assert len(single) == 1  # class 0 has one image: no folds possible
