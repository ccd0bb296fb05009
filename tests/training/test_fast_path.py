"""Training on cached activations: same model, same predictions, one full model on disk, no image decoded twice."""

import collections

import keras
import numpy as np
import pytest

from tests.factories import fast_config
from tltools import runs
from tltools.data import pipeline
from tltools.data.augment import AugmentOptions
from tltools.evaluation import evaluate_split
from tltools.model import build_model, load_model
from tltools.model.freezing import apply_unfreeze
from tltools.training import TrainingLog, feature_cache, train
from tltools.training.callbacks.throttled_checkpoint import ThrottledCheckpoint
from tltools.training.split_model import split_at_pooling, split_for_fine_tuning

pytestmark = pytest.mark.slow  # builds, trains or exports real models

PIXELS = np.random.default_rng(0).uniform(0, 255, (6, 64, 64, 3)).astype("float32")

# (backbone, weights, pooling, dense units, what phase 2 unfreezes, where phase 2 is cut)
SPLITS = [
    ("efficientnet_lite0", "imagenet", "avg", 0, "30", "block5c_add"),
    ("efficientnet_lite0", "imagenet", "max", 16, "block:6", "block5c_add"),
    ("efficientnet_lite0", "imagenet", "flatten", 0, "0", "pooling"),
    ("mobilenet_v2", "none", "avg", 0, "20", "block_13_project_BN"),
    ("resnet50", "none", "avg", 8, "10", "conv5_block1_out"),
]


@pytest.mark.parametrize("backbone, weights, pooling, dense_units, unfreeze, cut", SPLITS,
                         ids=[f"{row[0]}-{row[2]}-{row[4]}" for row in SPLITS])
def test_a_split_model_predicts_what_the_full_model_does(backbone, weights, pooling, dense_units, unfreeze, cut):
    model = build_model(backbone, 3, weights=weights, input_size=64, pooling=pooling, dense_units=dense_units)
    expected = model.predict(PIXELS, verbose=0)
    head = split_at_pooling(model)
    np.testing.assert_allclose(head.head.predict(head.extractor.predict(PIXELS, verbose=0), verbose=0), expected,
                               atol=1e-5)
    apply_unfreeze(model, unfreeze)
    tail = split_for_fine_tuning(model)
    assert tail.cut == cut
    np.testing.assert_allclose(tail.head.predict(tail.extractor.predict(PIXELS, verbose=0), verbose=0), expected,
                               atol=1e-5)
    assert {id(w) for w in tail.head.trainable_weights} == {id(w) for w in model.trainable_weights}


def test_unfreezing_everything_leaves_nothing_to_cache():
    model = build_model("efficientnet_lite0", 3, input_size=64)
    apply_unfreeze(model, "all")
    assert split_for_fine_tuning(model) is None


def test_training_the_head_trains_the_full_model():
    model = build_model("efficientnet_lite0", 3, input_size=64)
    split = split_at_pooling(model)
    assert split.head.get_layer("predictions") is model.get_layer("predictions")
    before = model.predict(PIXELS, verbose=0)
    split.head.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    features = split.extractor.predict(PIXELS, verbose=0)
    split.head.fit(features, keras.utils.to_categorical([0, 1, 2, 0, 1, 2], 3), epochs=2, verbose=0)
    after = model.predict(PIXELS, verbose=0)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(split.head.predict(features, verbose=0), after, atol=1e-5)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty feature cache for one test."""
    monkeypatch.setattr(feature_cache, "features_dir", lambda: tmp_path / "features")
    return tmp_path / "features"


@pytest.fixture
def decodes(monkeypatch):
    """Counts how often each image is decoded for training."""
    counts = collections.Counter()
    original = pipeline.load_image

    def counting(source, size):
        counts[str(source)] += 1
        return original(source, size)

    monkeypatch.setattr(pipeline, "load_image", counting)
    return counts


def test_a_run_uses_the_fast_path_then_reuses_its_cache(colours, fresh_cache, decodes):
    log = TrainingLog()
    first = train(fast_config(epochs=2), colours, log=log)
    assert first.metrics["fast_path"] is True and first.metrics["feature_cache"] == "miss"
    assert first.metrics["fine_tune_fast_path"] is False and first.metrics["fine_tune_feature_cache"] is None
    assert any(message.startswith("Fast path for phase 1") for message in log.snapshot()["messages"])
    assert "Fast path for phase 1" in (first.run.path / "log.txt").read_text()
    assert runs.read_run(first.run.path).metrics["feature_cache"] == "miss"
    assert max(decodes.values()) == 1 and len(decodes) == len(colours.items)

    decodes.clear()
    second = train(fast_config(epochs=3, learning_rate=3e-3), colours)
    assert second.metrics["feature_cache"] == "hit"
    assert not decodes, "a run on cached features decodes no image"
    other_size = train(fast_config(epochs=1, image_size=72), colours)
    assert other_size.metrics["feature_cache"] == "miss"


def test_the_checkpoint_on_disk_is_the_full_model_with_the_trained_head(colours, fresh_cache):
    result = train(fast_config(epochs=3, learning_rate=1e-2), colours)
    saved, classes, _ = load_model(result.run.path)
    assert classes == result.class_names and saved.get_layer("base") is not None
    assert saved.input_shape == (None, 64, 64, 3)
    np.testing.assert_allclose(saved.predict(PIXELS, verbose=0), result.model.predict(PIXELS, verbose=0), atol=1e-6)
    fresh = build_model("efficientnet_lite0", 3, input_size=64)
    trained, initial = (m.get_layer("predictions").get_weights()[0] for m in (saved, fresh))
    assert not np.allclose(trained, initial)


def test_metrics_from_cached_features_equal_metrics_from_the_images(colours, fresh_cache):
    config = fast_config(epochs=2)
    result = train(config, colours)
    model, classes, _ = load_model(result.run.path)
    split = colours.with_splits(val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed)
    from_images = evaluate_split(model, classes, split, "val")
    assert result.metrics["val"]["loss"] == pytest.approx(from_images["loss"], abs=1e-5)
    assert result.metrics["val"]["accuracy"] == from_images["accuracy"]
    assert result.metrics["val"]["confusion_matrix"] == from_images["confusion_matrix"]


def test_fine_tuning_on_cached_activations_decodes_each_image_once(colours, fresh_cache, decodes):
    result = train(fast_config(epochs=1, fine_tune_epochs=2, unfreeze="20"), colours)
    metrics = result.metrics
    assert metrics["fast_path"] and metrics["fine_tune_fast_path"]
    assert metrics["feature_cache"] == "miss" and metrics["fine_tune_feature_cache"] == "miss"
    assert metrics["epochs_run"] == 3
    assert max(decodes.values()) == 1 and len(decodes) == len(colours.items)
    model, classes, _ = load_model(result.run.path)
    split = colours.with_splits(val_fraction=0.3, test_fraction=0.0, seed=0)
    assert metrics["val"]["loss"] == pytest.approx(evaluate_split(model, classes, split, "val")["loss"], abs=1e-5)


def test_augmentation_trains_on_images_decoded_once(colours, fresh_cache, decodes):
    log = TrainingLog()
    augment = AugmentOptions(flip="horizontal")
    result = train(fast_config(epochs=1, fine_tune_epochs=1, unfreeze="20", augment=augment), colours, log=log)
    assert result.metrics["fast_path"] is False and result.metrics["feature_cache"] is None
    assert result.metrics["fine_tune_fast_path"] is False
    assert any("augmentation is on" in message for message in log.snapshot()["messages"])
    assert max(decodes.values()) == 1 and len(decodes) == len(colours.items)


def test_images_past_the_memory_budget_train_from_the_disk_cache(colours, fresh_cache, monkeypatch):
    config = fast_config(epochs=1, augment=AugmentOptions(flip="horizontal"))
    in_memory = train(config, colours)
    monkeypatch.setenv("TLTOOLS_DECODE_MEMORY_BYTES", "0")
    on_disk = train(config, colours)
    assert on_disk.metrics["val"]["loss"] == pytest.approx(in_memory.metrics["val"]["loss"], rel=1e-6)


class _Model:
    """Just enough of a Keras model for the checkpoint: weights that can be read and set."""

    def __init__(self):
        self.value = 0

    def get_weights(self):
        return [self.value]

    def set_weights(self, weights):
        self.value = weights[0]


def test_the_throttled_checkpoint_writes_the_best_weights_when_fit_ends():
    written = []
    checkpoint = ThrottledCheckpoint(lambda model: written.append(model.value), min_interval=3600)
    model = _Model()
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    for epoch, loss in enumerate([3.0, 1.0, 2.0]):
        model.value = epoch
        checkpoint.on_epoch_end(epoch, {"val_loss": loss})
    assert written == [0], "the first improvement is written at once: a run killed early has a checkpoint"
    assert checkpoint.saves == 2 and checkpoint.best_epoch == 2
    checkpoint.on_train_end()
    assert written == [0, 1] and model.value == 2, "the best (epoch 2) is written, the current weights stay"
    assert checkpoint.restore_best(model) and model.value == 1
    assert not checkpoint.restore_best(_Model())


def test_without_a_minimum_interval_every_improvement_is_written():
    written = []
    checkpoint = ThrottledCheckpoint(lambda model: written.append(model.value), min_interval=0)
    model = _Model()
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    for epoch, loss in enumerate([3.0, 1.0, 2.0, 0.5]):
        model.value = epoch
        checkpoint.on_epoch_end(epoch, {"val_loss": loss})
    checkpoint.on_train_end()
    assert written == [0, 1, 3] and checkpoint.writes == 3


def test_when_fine_tuning_only_gets_worse_the_run_keeps_the_best_head_from_phase_1(colours, fresh_cache):
    config = fast_config(epochs=2, learning_rate=1e-2, fine_tune_epochs=2, unfreeze="20", fine_tune_learning_rate=10.0)
    result = train(config, colours)
    metrics = result.metrics
    assert metrics["fine_tune_fast_path"] and metrics["epochs_run"] == 4
    assert metrics["best_epoch"] <= config.epochs, "phase 2 at a learning rate of 10 only makes things worse"
    assert metrics["val"]["loss"] == pytest.approx(metrics["best_val_loss"], abs=1e-4)
    saved, _, _ = load_model(result.run.path)
    np.testing.assert_allclose(saved.predict(PIXELS, verbose=0), result.model.predict(PIXELS, verbose=0), atol=1e-6)
