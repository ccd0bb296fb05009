"""The two-phase training recipe, run folders, stop, early stopping and continuing a run."""

import threading

import numpy as np
import pandas as pd
import pytest

from tests.factories import COLOURS, colour_images, fast_config, write_tree
from tests.waiting import wait_until
from tltools import runs
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.model import build_model, load_model
from tltools.training import StopRequest, TrainingLog, history_frame, train


def base_weights(model):
    return [w.copy() for w in model.get_layer("base").get_weights()]


def batchnorm_statistics(model):
    return [
        w.numpy().copy()
        for layer in model.get_layer("base").layers
        if layer.__class__.__name__ == "BatchNormalization"
        for w in layer.non_trainable_weights
    ]


@pytest.fixture(scope="module")
def two_phase(colours):
    """One run: 2 epochs on the frozen base, then 2 epochs fine-tuning the top 20 layers."""
    config = fast_config(epochs=2, fine_tune_epochs=2, unfreeze="20", learning_rate=1e-3)
    log = TrainingLog()
    return train(config, colours, log=log), log


@pytest.mark.slow
def test_a_run_folder_holds_everything_needed_to_use_and_reproduce_the_run(two_phase):
    result, _ = two_phase
    files = {path.name for path in result.run.path.iterdir()}
    assert {"config.json", "status.json", "labels.txt", "dataset.json", "splits.csv", "history.csv",
            "metrics.json", "log.txt", "model.keras"} <= files
    assert result.run.status == runs.COMPLETED
    assert (result.run.path / "labels.txt").read_text().splitlines() == ["blue", "green", "red"]
    model, classes, _ = load_model(result.run.path)
    assert classes == ["blue", "green", "red"] and model.output_shape[-1] == 3


def test_metrics_json_has_what_the_cli_promises(two_phase):
    metrics = runs.read_run(two_phase[0].run.path).metrics
    assert metrics["classes"] == ["blue", "green", "red"]
    assert {"accuracy", "macro_f1", "loss", "per_class", "confusion_matrix"} <= set(metrics["val"])
    assert metrics["test"] is None
    assert metrics["epochs_run"] == 4
    assert metrics["train_seconds"] > 0


def test_colour_classes_are_learned(two_phase):
    assert two_phase[0].metrics["val"]["accuracy"] >= 0.9


def test_phase_two_continues_the_epoch_count_at_a_tenth_of_the_learning_rate(two_phase):
    result, log = two_phase
    epochs = log.snapshot()["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert [e["learning_rate"] for e in epochs] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    history = history_frame(result.run.path)
    assert list(history["epoch"]) == [0, 1, 2, 3]
    assert "phase 2: fine-tuning (unfreeze 20)" in (result.run.path / "log.txt").read_text()


def test_the_metrics_recorder_keeps_batches_epochs_and_timings(two_phase):
    state = two_phase[1].snapshot()
    assert state["total_epochs"] == 4
    assert len(state["batches"]) == 4 * state["steps_per_epoch"]
    assert all({"step", "loss", "accuracy"} <= set(batch) for batch in state["batches"])
    assert all(epoch["seconds"] > 0 and "val_loss" in epoch for epoch in state["epochs"])
    assert state["phase"] == 2


@pytest.mark.slow
def test_phase_one_trains_only_the_head(colours):
    result = train(fast_config(epochs=1), colours)
    fresh = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=64)
    for trained, original in zip(base_weights(result.model), base_weights(fresh)):
        np.testing.assert_array_equal(trained, original)


@pytest.mark.slow
def test_fine_tuning_changes_the_base_but_not_batchnorm_statistics(two_phase):
    model = two_phase[0].model
    fresh = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=64)
    changed = [not np.array_equal(a, b) for a, b in zip(base_weights(model), base_weights(fresh))]
    assert any(changed), "phase 2 must update the unfrozen top of the base"
    for trained, original in zip(batchnorm_statistics(model), batchnorm_statistics(fresh)):
        np.testing.assert_array_equal(trained, original)


@pytest.mark.slow
def test_same_config_and_data_give_the_same_split_and_metrics(colours):
    first = train(fast_config(epochs=1), colours)
    second = train(fast_config(epochs=1), colours)
    assert (first.run.path / "splits.csv").read_text() == (second.run.path / "splits.csv").read_text()
    assert first.metrics["val"]["loss"] == pytest.approx(second.metrics["val"]["loss"], rel=1e-6)
    assert first.metrics["val"]["confusion_matrix"] == second.metrics["val"]["confusion_matrix"]


@pytest.mark.slow
def test_stop_from_another_thread_ends_after_the_current_batch_and_keeps_the_model(colours):
    log, stop = TrainingLog(), StopRequest()
    result = {}
    worker = threading.Thread(target=lambda: result.update(done=train(fast_config(epochs=50), colours, log=log,
                                                                        stop=stop)))
    worker.start()
    wait_until(lambda: log.snapshot()["epochs"] or not worker.is_alive(), 300, "no epoch was logged")
    stop.stop()
    worker.join(timeout=120)
    done = result["done"]
    assert done.run.status == runs.STOPPED
    assert done.metrics["stopped_by_user"] is True
    assert done.metrics["epochs_run"] < 50
    model, _, _ = load_model(done.run.path)
    assert model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0).shape == (1, 3)


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_validation_loss_only_rises(tmp_path):
    # Validation labels are the training labels swapped: the better the fit, the worse val gets.
    swapped = {"red": COLOURS["blue"], "blue": COLOURS["red"]}
    files = colour_images({"red": COLOURS["red"], "blue": COLOURS["blue"]}, 8, seed=1, prefix="train/")
    files.update(colour_images(swapped, 4, seed=2, prefix="val/"))
    dataset = load_dataset(write_tree(tmp_path, files))
    result = train(fast_config(epochs=20, early_stopping_patience=2, learning_rate=1e-2), dataset)
    assert result.metrics["epochs_run"] < 20
    assert result.metrics["best_epoch"] == 1


@pytest.fixture
def fit_class_weights(monkeypatch):
    """The ``class_weight`` every ``fit`` of a run receives, in order."""
    import keras

    received = []
    fit = keras.Model.fit

    def spying_fit(self, *args, **kwargs):
        received.append(kwargs.get("class_weight"))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spying_fit)
    return received


@pytest.mark.slow
def test_balanced_class_weights_reach_fit_and_imbalance_without_them_warns(tmp_path, fit_class_weights):
    files = colour_images({"red": COLOURS["red"]}, 24, seed=3)
    files.update(colour_images({"blue": COLOURS["blue"]}, 4, seed=4))
    dataset = load_dataset(write_tree(tmp_path, files), val_fraction=0.25)
    log = TrainingLog()
    warned = train(fast_config(epochs=1), dataset, log=log)
    assert fit_class_weights == [None]
    assert "imbalanced" in (warned.run.path / "log.txt").read_text()
    assert any("imbalanced" in message for message in log.snapshot()["messages"])

    weighted = train(fast_config(epochs=1, class_weights="balanced"), dataset)
    train_split = pd.read_csv(weighted.run.path / "splits.csv").query("split == 'train'")
    counts = train_split["label"].value_counts()  # classes in output order: blue (0), red (1)
    assert counts["red"] >= 5 * counts["blue"]
    expected = {0: len(train_split) / (2 * counts["blue"]), 1: len(train_split) / (2 * counts["red"])}
    assert fit_class_weights[1] == pytest.approx(expected)
    assert "imbalanced" not in (weighted.run.path / "log.txt").read_text()


@pytest.mark.slow
def test_balanced_class_weights_on_balanced_data_are_all_one(colours, fit_class_weights):
    train(fast_config(epochs=1, class_weights="balanced"), colours)
    assert fit_class_weights == [{0: pytest.approx(1.0), 1: pytest.approx(1.0), 2: pytest.approx(1.0)}]


@pytest.mark.slow
def test_continuing_a_run_on_the_same_classes_starts_from_its_weights(two_phase, colours):
    previous = two_phase[0]
    config = fast_config(epochs=1, learning_rate=1e-8, optimizer="sgd", momentum=0.0)
    continued = train(config, colours, from_run=previous.run.path)
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(continued.model.predict(images, verbose=0), previous.model.predict(images, verbose=0),
                               atol=1e-4)
    assert "continuing the model" in (continued.run.path / "log.txt").read_text()


@pytest.mark.slow
def test_continuing_on_a_new_class_list_gets_a_new_head_on_the_old_base(two_phase, tmp_path):
    files = colour_images({**COLOURS, "yellow": (220, 210, 40)}, 6, seed=5)
    dataset = load_dataset(write_tree(tmp_path, files), val_fraction=0.34)
    result = train(fast_config(epochs=1), dataset, from_run=two_phase[0].run.path)
    assert result.class_names == ["blue", "green", "red", "yellow"]
    assert result.model.output_shape[-1] == 4
    for new, old in zip(base_weights(result.model), base_weights(two_phase[0].model)):
        np.testing.assert_array_equal(new, old)


def test_a_failing_run_is_recorded_as_failed_with_the_reason(colours):
    # (A bad setting such as unfreeze="block:99" no longer gets this far: TrainConfig refuses it.)
    with pytest.raises(TLToolsError, match="needs validation images"):
        train(fast_config(epochs=1, val_fraction=0.0), colours)
    failed = [run for run in runs.list_runs() if run.status == runs.FAILED]
    assert failed and "needs validation images" in failed[0].error


def test_an_existing_run_folder_is_never_overwritten(two_phase, colours):
    with pytest.raises(TLToolsError, match="already holds a run"):
        train(fast_config(epochs=1), colours, run_dir=two_phase[0].run.path)


def test_history_of_a_fresh_folder_is_empty(tmp_path):
    assert isinstance(history_frame(tmp_path), pd.DataFrame) and history_frame(tmp_path).empty
