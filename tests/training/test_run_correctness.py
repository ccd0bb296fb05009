"""Where fine-tuning starts, which loss picks the best epoch, and runs that own their random draws (issue 11)."""

import random
import threading
import time

import keras
import numpy as np
import pytest

from tests.factories import COLOURS, colour_images, fast_config, write_tree
from tltools.data import load_dataset
from tltools.training import history_frame, train


class _WeightsSpy(keras.callbacks.Callback):
    """Keeps the classifier's weights when each ``fit`` begins and after every epoch."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def _classifier(self):
        return [w.copy() for w in self.model.get_layer("predictions").get_weights()]

    def on_train_begin(self, logs=None):
        self.seen["fit_starts"].append(self._classifier())

    def on_epoch_end(self, epoch, logs=None):
        self.seen["epochs"].append(self._classifier())


@pytest.fixture
def spy(monkeypatch):
    """Record what every ``fit`` of a run receives and the classifier weights it starts from and reaches."""
    seen = {"fit_starts": [], "epochs": [], "fit_kwargs": []}
    fit = keras.Model.fit

    def spying_fit(self, *args, callbacks=None, **kwargs):
        seen["fit_kwargs"].append(kwargs)
        return fit(self, *args, callbacks=[*(callbacks or []), _WeightsSpy(seen)], **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spying_fit)
    return seen


@pytest.fixture(scope="module")
def worsening(tmp_path_factory):
    """Validation labels are the training labels swapped: after the first epoch, every epoch is worse."""
    swapped = {"red": COLOURS["blue"], "blue": COLOURS["red"]}
    files = colour_images({"red": COLOURS["red"], "blue": COLOURS["blue"]}, 8, seed=1, prefix="train/")
    files.update(colour_images(swapped, 4, seed=2, prefix="val/"))
    return load_dataset(write_tree(tmp_path_factory.mktemp("worsening"), files))


@pytest.mark.parametrize("patience", [0, 10], ids=["early-stopping-off", "early-stopping-on"])
@pytest.mark.slow
def test_fine_tuning_starts_from_the_best_phase_one_epoch_whatever_the_patience(worsening, spy, patience):
    config = fast_config(epochs=4, fine_tune_epochs=1, unfreeze="20", learning_rate=1e-2,
                         early_stopping_patience=patience)

    result = train(config, worsening)

    val_loss = history_frame(result.run.path)["val_loss"].to_numpy()
    best = int(np.argmin(val_loss[:4]))
    assert best < 3 and result.metrics["best_epoch"] == best + 1, "the last phase-1 epoch is not the best"
    phase_two_start = spy["fit_starts"][1]
    for start, at_best, at_last in zip(phase_two_start, spy["epochs"][best], spy["epochs"][3]):
        np.testing.assert_array_equal(start, at_best)
    assert not all(np.array_equal(a, b) for a, b in zip(spy["epochs"][best], spy["epochs"][3]))


@pytest.mark.slow
def test_the_best_epoch_and_metrics_use_the_same_unsmoothed_cross_entropy(colours):
    result = train(fast_config(epochs=3, label_smoothing=0.2, learning_rate=3e-3), colours)

    history = history_frame(result.run.path)
    best = int(np.argmin(history["val_loss"]))
    assert result.metrics["best_epoch"] == best + 1
    assert result.metrics["best_val_loss"] == pytest.approx(history["val_loss"][best], rel=1e-6)
    assert result.metrics["val"]["loss"] == pytest.approx(history["val_loss"][best], abs=1e-4)
    # The smoothed quantity the optimizer minimises is kept, under its own name.
    assert (history["val_objective"] - history["val_loss"]).abs().min() > 0.01
    assert {"loss", "objective", "accuracy", "val_accuracy"} <= set(history.columns)


def _interfere(stop: threading.Event) -> None:
    """What pages do meanwhile: reseed everything, build models and draw random numbers."""
    count = 0
    while not stop.is_set():
        count += 1
        keras.utils.set_random_seed(count)
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dropout(0.5)])
        keras.random.uniform((2,))
        random.random()
        np.random.random()
        time.sleep(0.005)


def _outcome(result):
    return result.metrics["val"], result.model.get_weights()


@pytest.mark.slow  # two runs, one beside a busy thread; the fast tier checks each seeded part on its own
def test_a_run_reproduces_while_another_thread_builds_models_and_draws_random_numbers(colours):
    config = fast_config(epochs=2, weights="none", dense_units=8, dropout=0.3, batch_size=4)
    alone = _outcome(train(config, colours))

    stop = threading.Event()
    other = threading.Thread(target=_interfere, args=(stop,))
    other.start()
    try:
        busy = _outcome(train(config, colours))
    finally:
        stop.set()
        other.join()

    assert busy[0]["loss"] == alone[0]["loss"] and busy[0]["confusion_matrix"] == alone[0]["confusion_matrix"]
    for a, b in zip(alone[1], busy[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # two runs; tests/model/test_builder.py checks the seeded model in the fast tier
def test_another_seed_gives_another_model(colours):
    first = train(fast_config(epochs=1, seed=0), colours).model.get_layer("predictions").get_weights()
    other = train(fast_config(epochs=1, seed=1), colours).model.get_layer("predictions").get_weights()
    assert not np.allclose(first[0], other[0])
