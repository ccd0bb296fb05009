"""preview_unfreeze: what an unfreeze setting would train, computed without touching the model."""

import pandas as pd
import pytest

from tltools.errors import TLToolsError
from tltools.model import apply_unfreeze, build_model, layer_table, parameter_totals
from tltools.model.freezing import base_of, preview_unfreeze, weighted_layers

SIZE = 96
SETTINGS = ["0", "none", "1", "10", "all", "block:6", "block:7"]
SMALL_SETTINGS = ["0", "3", "10", "all", "block:9"]  # mobilenet_v3_small's blocks are 1..10


def build(backbone):
    return build_model(backbone, 3, weights="none", input_size=SIZE, dense_units=8)


@pytest.fixture(scope="module")
def previewed():
    """One EfficientNet-Lite0 model that only ever gets previewed (never unfrozen)."""
    return build("efficientnet_lite0")


@pytest.fixture(scope="module")
def previewed_small():
    return build("mobilenet_v3_small")


def trainability(model):
    """Every layer's flag and every variable's flag, in order: what preview must leave alone."""
    layers = [(layer.name, layer.trainable) for layer in model._flatten_layers()]
    variables = [(variable.path, variable.trainable) for variable in model.weights]
    return layers, variables


def expected(backbone, setting, train_batchnorm):
    reference = build(backbone)
    apply_unfreeze(reference, setting, train_batchnorm=train_batchnorm)
    return layer_table(reference), parameter_totals(reference)


def assert_preview_matches(model, backbone, setting, train_batchnorm):
    before = trainability(model)
    table, totals = preview_unfreeze(model, setting, train_batchnorm=train_batchnorm)
    want_table, want_totals = expected(backbone, setting, train_batchnorm)
    # Names differ where Keras numbers auto-named layers per model (rescaling, rescaling_1, ...).
    pd.testing.assert_frame_equal(table.drop(columns="name"), want_table.drop(columns="name"))
    assert totals == want_totals
    assert trainability(model) == before


@pytest.mark.parametrize("train_batchnorm", [False, True])
@pytest.mark.parametrize("setting", SETTINGS)
def test_preview_equals_applying_the_setting_to_a_copy(previewed, setting, train_batchnorm):
    assert_preview_matches(previewed, "efficientnet_lite0", setting, train_batchnorm)


@pytest.mark.parametrize("train_batchnorm", [False, True])
@pytest.mark.parametrize("setting", SMALL_SETTINGS)
def test_preview_equals_applying_on_another_backbone(previewed_small, setting, train_batchnorm):
    assert_preview_matches(previewed_small, "mobilenet_v3_small", setting, train_batchnorm)


def test_preview_leaves_the_model_frozen_as_built(previewed):
    frozen_table, frozen_totals = layer_table(previewed), parameter_totals(previewed)
    preview_unfreeze(previewed, "all", train_batchnorm=True)
    pd.testing.assert_frame_equal(layer_table(previewed), frozen_table)
    assert parameter_totals(previewed) == frozen_totals
    assert not base_of(previewed).trainable


@pytest.mark.slow
def test_preview_does_not_depend_on_what_was_unfrozen_before():
    model = build("efficientnet_lite0")
    apply_unfreeze(model, "all", train_batchnorm=True)
    assert_preview_matches(model, "efficientnet_lite0", "5", False)


def test_more_layers_means_more_trainable_parameters(previewed):
    counts = [preview_unfreeze(previewed, str(n))[1]["trainable"] for n in (0, 2, 20)]
    assert counts[0] < counts[1] < counts[2]
    assert preview_unfreeze(previewed, "0")[1] == parameter_totals(previewed)


@pytest.mark.parametrize("setting", ["block:99", "9999", "half", "-1"])
def test_preview_refuses_what_apply_unfreeze_refuses_with_the_same_message(previewed, setting):
    with pytest.raises(TLToolsError) as refused:
        apply_unfreeze(build("efficientnet_lite0"), setting)
    with pytest.raises(TLToolsError) as previewed_error:
        preview_unfreeze(previewed, setting)
    assert str(previewed_error.value) == str(refused.value)


def test_the_largest_n_unfreezes_every_weighted_layer(previewed):
    table, _ = preview_unfreeze(previewed, str(len(weighted_layers(previewed))), train_batchnorm=True)
    assert table[table["params"] > 0]["trainable"].all()
