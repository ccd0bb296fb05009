"""Each backbone's preprocessing rule computes exactly what Keras' own preprocess_input does."""

import keras
import numpy as np
import pytest
from keras.applications import (
    convnext,
    densenet,
    efficientnet,
    efficientnet_v2,
    inception_v3,
    mobilenet_v2,
    mobilenet_v3,
    resnet50,
    resnet_v2,
    vgg16,
    vgg19,
    xception,
)

from tltools.backbones import list_backbones, preprocessing_layer
from tltools.backbones.preprocessing import NONE, RULES
from tltools.errors import TLToolsError


def _lite_reference(x):
    """EfficientNet-Lite's published input scaling (no Keras function exists for it)."""
    return (x - 127.0) / 128.0


# What each backbone family expects, written independently of tltools' rules.
KERAS_REFERENCE = {
    "efficientnet_lite0": _lite_reference,
    "efficientnet_lite1": _lite_reference,
    "efficientnet_lite2": _lite_reference,
    "mobilenet_v2": mobilenet_v2.preprocess_input,
    "mobilenet_v3_small": mobilenet_v3.preprocess_input,
    "mobilenet_v3_large": mobilenet_v3.preprocess_input,
    "efficientnet_b0": efficientnet.preprocess_input,
    "efficientnet_b1": efficientnet.preprocess_input,
    "efficientnet_b2": efficientnet.preprocess_input,
    "efficientnet_b3": efficientnet.preprocess_input,
    "efficientnet_v2_b0": efficientnet_v2.preprocess_input,
    "efficientnet_v2_b1": efficientnet_v2.preprocess_input,
    "efficientnet_v2_b2": efficientnet_v2.preprocess_input,
    "efficientnet_v2_b3": efficientnet_v2.preprocess_input,
    "resnet50": resnet50.preprocess_input,
    "resnet50_v2": resnet_v2.preprocess_input,
    "vgg16": vgg16.preprocess_input,
    "vgg19": vgg19.preprocess_input,
    "inception_v3": inception_v3.preprocess_input,
    "xception": xception.preprocess_input,
    "densenet121": densenet.preprocess_input,
    "convnext_tiny": convnext.preprocess_input,
}

SPECS = list_backbones()


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")


def apply_rule(rule, x):
    layer = preprocessing_layer(rule)
    return x if layer is None else keras.ops.convert_to_numpy(layer(x))


def test_every_registered_backbone_has_a_keras_reference():
    assert sorted(spec.name for spec in SPECS) == sorted(KERAS_REFERENCE)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_rule_matches_keras_preprocess_input(spec, pixels):
    expected = np.asarray(KERAS_REFERENCE[spec.name](pixels.copy()))

    np.testing.assert_allclose(apply_rule(spec.preprocessing, pixels), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.preprocessing == NONE], ids=lambda spec: spec.name)
def test_backbones_that_normalise_inside_get_raw_pixels_from_keras_too(spec, pixels):
    # Keras' own preprocess_input is a pass-through for these families, so adding
    # a rule in front of them would normalise twice.
    np.testing.assert_array_equal(KERAS_REFERENCE[spec.name](pixels.copy()), pixels)


def test_caffe_rule_swaps_rgb_to_bgr_and_subtracts_the_mean():
    red = np.zeros((1, 1, 1, 3), "float32")
    red[..., 0] = 255.0

    out = apply_rule("caffe", red)[0, 0, 0]

    np.testing.assert_allclose(out, [-103.939, -116.779, 255.0 - 123.68], atol=1e-4)


@pytest.mark.parametrize("rule", [r for r in RULES if r != NONE])
def test_rule_layers_have_nothing_to_train(rule):
    layer = preprocessing_layer(rule)
    layer.build((None, 8, 8, 3))

    assert layer.trainable_weights == []


def test_caffe_layer_is_named_for_what_it_does():
    assert preprocessing_layer("caffe").name == "caffe_bgr_mean"


def test_unknown_rule_is_refused_with_the_valid_ones():
    with pytest.raises(TLToolsError, match=r"'1/255'.*\[-1,1\].*caffe"):
        preprocessing_layer("1/255")
