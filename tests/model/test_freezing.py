"""Freezing and unfreezing the base: what trains, what a UI can show, and recompilation."""

import keras
import numpy as np
import pytest

from tltools.backbones import get_backbone
from tltools.errors import TLToolsError
from tltools.model import (
    block_names,
    build_model,
    freeze_base,
    layer_table,
    parameter_totals,
    unfreeze_all,
    unfreeze_from_block,
    unfreeze_top,
)
from tltools.model.freezing import weighted_layers

HEAD_PARAMS = 1280 * 3 + 3  # predictions layer of a 3-class EfficientNet-Lite0 model


@pytest.fixture
def model():
    """A fresh 3-class EfficientNet-Lite0 transfer model (ImageNet weights load offline)."""
    return build_model("efficientnet_lite0", 3, weights="imagenet", input_size=96, dropout=0)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(2)
    return rng.uniform(0, 255, (4, 96, 96, 3)).astype("float32"), np.array([0, 1, 2, 1])


def trainable_base_layers(model):
    return [layer.name for layer in model.get_layer("base").layers if layer.trainable_weights]


def is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


@pytest.mark.slow
def test_new_model_trains_only_its_head(model):
    assert trainable_base_layers(model) == []
    assert parameter_totals(model) == {"trainable": HEAD_PARAMS, "frozen": get_backbone("efficientnet_lite0").params}


def test_unfreeze_top_n_trains_the_last_n_weighted_layers_except_batchnorm(model):
    top = weighted_layers(model)[-5:]

    unfreeze_top(model, 5)

    assert trainable_base_layers(model) == [layer.name for layer in top if not is_batchnorm(layer)]
    # From the top: top_bn, top_conv, block7a_project_bn, block7a_project_conv, block7a_bn.
    assert trainable_base_layers(model) == ["block7a_project_conv", "top_conv"]


def test_unfreeze_top_n_with_batchnorm_trains_all_n(model):
    unfreeze_top(model, 5, train_batchnorm=True)

    assert trainable_base_layers(model) == [layer.name for layer in weighted_layers(model)[-5:]]


def test_unfreezing_the_top_n_changes_the_trainable_total_by_their_weights(model):
    top = [layer for layer in weighted_layers(model)[-3:] if not is_batchnorm(layer)]

    unfreeze_top(model, 3)

    totals = parameter_totals(model)
    assert totals["trainable"] == HEAD_PARAMS + sum(layer.count_params() for layer in top)
    assert totals["trainable"] + totals["frozen"] == model.count_params()


def test_unfreeze_top_zero_freezes_the_base_again(model):
    unfreeze_top(model, 10)

    unfreeze_top(model, 0)

    assert trainable_base_layers(model) == []


def test_unfreeze_all_trains_every_layer_but_batchnorm(model):
    unfreeze_all(model)

    base = model.get_layer("base")
    expected = [layer.name for layer in base.layers if layer.weights and not is_batchnorm(layer)]
    assert trainable_base_layers(model) == expected
    assert not any(layer.trainable for layer in base.layers if is_batchnorm(layer))


def test_largest_n_is_the_number_of_weighted_layers(model):
    largest = len(weighted_layers(model))
    unfreeze_top(model, largest)
    everything = trainable_base_layers(model)
    unfreeze_all(model)

    assert everything == trainable_base_layers(model)
    with pytest.raises(TLToolsError, match=rf"top {largest + 1} layers.*from 0 to {largest}"):
        unfreeze_top(model, largest + 1)


@pytest.mark.parametrize("n", [-1, 2.5, "3", True])
def test_bad_n_is_refused_with_the_valid_range(model, n):
    with pytest.raises(TLToolsError, match=rf"top {n!r} layers.*from 0 to"):
        unfreeze_top(model, n)


def test_freeze_base_undoes_any_unfreezing(model):
    unfreeze_all(model, train_batchnorm=True)

    freeze_base(model)

    assert trainable_base_layers(model) == []
    assert parameter_totals(model)["trainable"] == HEAD_PARAMS


@pytest.mark.parametrize("block", [6, "6"])
def test_unfreeze_from_block_trains_that_block_and_everything_after(model, block):
    unfreeze_from_block(model, block)

    trainable = trainable_base_layers(model)
    assert trainable[0] == "block6a_expand_conv"
    assert "block5c_project_conv" not in trainable
    assert {"block6d_dwconv", "block7a_project_conv", "top_conv"} <= set(trainable)


def test_unknown_block_names_the_valid_blocks(model):
    with pytest.raises(TLToolsError, match=r"efficientnet_lite0 has no block 9; choose one of 1, 2, 3, 4, 5, 6, 7"):
        unfreeze_from_block(model, 9)


def test_backbone_without_blocks_points_to_unfreeze_top():
    inception = build_model("inception_v3", 2, weights="none", input_size=75)

    assert block_names(inception) == []
    with pytest.raises(TLToolsError, match="no named blocks, use unfreeze_top"):
        unfreeze_from_block(inception, 3)


def test_block_names_of_a_spec_and_of_its_model_agree(model):
    assert block_names(get_backbone("efficientnet_lite0")) == block_names(model) == ["1", "2", "3", "4", "5", "6", "7"]


def test_layer_table_describes_every_base_layer(model):
    unfreeze_top(model, 4)

    table = layer_table(model)

    base = model.get_layer("base")
    assert list(table.columns) == ["index", "name", "type", "block", "params", "trainable", "top_n"]
    assert list(table["name"]) == [layer.name for layer in base.layers]
    assert table["params"].sum() == base.count_params()
    top = table.set_index("name")
    assert top.loc["top_bn", "top_n"] == 1 and top.loc["top_conv", "top_n"] == 2
    assert top.loc["top_conv", "type"] == "Conv2D" and top.loc["block6a_expand_conv", "block"] == "6"
    assert top["top_n"].max() == len(weighted_layers(model))
    assert list(table.loc[table["trainable"], "name"]) == ["block7a_project_conv", "top_conv"]


@pytest.mark.slow
def test_unfreezing_a_compiled_model_recompiles_it_so_the_new_weights_train(model, batch):
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*batch, epochs=1, verbose=0)
    first_optimizer = model.optimizer
    base = model.get_layer("base")
    top_conv, block1_conv, top_bn = base.get_layer("top_conv"), base.get_layer("stem_conv"), base.get_layer("top_bn")
    before = {
        "top_conv": top_conv.kernel.numpy(),
        "stem_conv": block1_conv.kernel.numpy(),
        "top_bn": [w.numpy() for w in top_bn.weights],
    }

    unfreeze_top(model, 4)
    history = model.fit(*batch, epochs=1, verbose=0)

    assert model.optimizer is not first_optimizer
    assert type(model.optimizer) is keras.optimizers.Adam
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert set(history.history) == {"loss", "accuracy"}
    assert not np.array_equal(top_conv.kernel.numpy(), before["top_conv"])  # newly trainable: changed
    np.testing.assert_array_equal(block1_conv.kernel.numpy(), before["stem_conv"])  # still frozen
    for after, expected in zip(top_bn.weights, before["top_bn"], strict=True):  # frozen BatchNorm
        np.testing.assert_array_equal(after.numpy(), expected)


@pytest.mark.slow
def test_unfreezing_leaves_an_uncompiled_model_uncompiled(model):
    unfreeze_top(model, 4)

    assert not model.compiled


def test_a_model_not_built_by_tltools_is_refused():
    inputs = keras.Input((8,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="efficientnet_lite0")

    with pytest.raises(TLToolsError, match="has no 'base' layer; build it with tltools.model.build_model"):
        unfreeze_all(plain)
