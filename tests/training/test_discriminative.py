"""Gradual unfreezing with discriminative learning rates (tltools.training.discriminative) and its phase 2."""

import keras
import numpy as np
import pytest

from tests.factories import fast_config
from tltools.model import build_model
from tltools.model.freezing import apply_unfreeze, base_of
from tltools.training import train
from tltools.training.discriminative import (BLOCK_RATE_FACTOR, CosineDecay, block_rate_scales, gradual_stages,
                                             make_layer_rate_optimizer)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop"])
def test_a_variable_with_a_lower_scale_moves_less_at_the_same_gradient(name):
    top, deep = keras.Variable(np.zeros(4, "float32")), keras.Variable(np.zeros(4, "float32"))
    optimizer = make_layer_rate_optimizer(name, 0.01, {id(deep): 1 / BLOCK_RATE_FACTOR}, weight_decay=0.0)
    gradient = np.full(4, 0.5, "float32")
    for _ in range(3):
        optimizer.apply_gradients([(gradient, top), (gradient, deep)])

    moved_top, moved_deep = np.abs(top.numpy()), np.abs(deep.numpy())
    assert np.all(moved_top > 0)
    np.testing.assert_allclose(moved_deep * BLOCK_RATE_FACTOR, moved_top, rtol=1e-4)


def test_deeper_blocks_get_lower_scales_and_the_stages_unfreeze_one_block_more_each():
    model = build_model("efficientnet_lite0", 3, weights="none", input_size=64)
    apply_unfreeze(model, "block:5")
    scales = block_rate_scales(model)
    by_layer = {layer.name: scales[id(layer.trainable_weights[0])]
                for layer in base_of(model).layers if layer.trainable_weights}
    assert by_layer["block7a_project_conv"] == 1.0
    assert by_layer["block6a_expand_conv"] == pytest.approx(1 / BLOCK_RATE_FACTOR)
    assert by_layer["block5a_expand_conv"] == pytest.approx(BLOCK_RATE_FACTOR ** -2)
    assert not any("block4" in name for name in by_layer)

    assert gradual_stages(model, "block:5", 12) == [("block:7", 3), ("block:6", 3), ("block:5", 6)]
    assert gradual_stages(model, "block:5", 2) == [("block:7", 1), ("block:5", 1)]
    assert gradual_stages(model, "block:7", 5) == [("block:7", 5)]
    assert gradual_stages(model, "all", 5) == [("all", 5)]


def test_the_cosine_schedule_decays_from_the_phase_rate():
    decay = CosineDecay(0.01, first_epoch=10, epochs=4)
    rates = [decay.rate(epoch) for epoch in range(10, 14)]
    assert rates[0] == pytest.approx(0.01) and all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] > 0


@pytest.mark.slow
def test_gradual_phase_two_trains_the_top_blocks_only_and_keeps_batchnorm_statistics(colours, tmp_path):
    config = fast_config(epochs=1, fine_tune_epochs=3, unfreeze="block:6", gradual_unfreeze=True)
    start = build_model("efficientnet_lite0", colours.classes, weights="imagenet", input_size=64, seed=0)
    before = {weight.path: weight.numpy().copy() for weight in start.weights}

    result = train(config, colours, runs_root=tmp_path)

    after = {weight.path: weight.numpy() for weight in result.model.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert any("block7" in path for path in changed) and any("block6" in path for path in changed)
    assert not any(name in path for path in changed for name in ("block5", "block1", "stem"))
    assert not any(("moving_mean" in path or "moving_variance" in path) for path in changed)
    log = (result.run.path / "log.txt").read_text()
    assert "unfreeze block:7" in log and "unfreeze block:6" in log
    assert result.metrics["epochs_run"] <= 4


def test_a_model_compiled_with_layer_rates_saves_and_loads_as_a_plain_keras_model(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=make_layer_rate_optimizer("adam", 0.01, {id(model.weights[0]): 0.5}), loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")

    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is keras.optimizers.Adam
    np.testing.assert_allclose(loaded.predict(np.ones((1, 3), "float32"), verbose=0),
                               model.predict(np.ones((1, 3), "float32"), verbose=0))
