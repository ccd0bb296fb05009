"""The transfer model follows the Keras guide for every registered backbone."""

import keras
import numpy as np
import pytest
from keras.applications import densenet, mobilenet_v2, mobilenet_v3, resnet50

from tltools.backbones import list_backbones
from tltools.errors import TLToolsError
from tltools.model import block_names, build_imagenet_classifier, build_model, freeze_base, unfreeze_all

SPECS = list_backbones()
NORMALISERS = (keras.layers.Rescaling, keras.layers.Normalization)


def spec_id(spec):
    return spec.name


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).uniform(0, 255, (2, 96, 96, 3)).astype("float32")


def layers_before_base(model):
    """The outer layers between the pixel input and the nested base."""
    return model.layers[1 : model.layers.index(model.get_layer("base"))]


def leading_normalisers(base):
    """The Rescaling/Normalization layers a Keras application starts with."""
    found = []
    for layer in base.layers[1:]:
        if not isinstance(layer, NORMALISERS):
            break
        found.append(layer)
    return found


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_backbone_gives_one_probability_per_class(spec, registry_model, pixels):
    probs = keras.ops.convert_to_numpy(registry_model(spec.name)(pixels, training=False))

    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_spec_facts_match_the_built_backbone(spec, registry_model):
    model = registry_model(spec.name)
    base = model.get_layer("base")

    assert base.count_params() == spec.params
    assert base.output_shape[-1] == spec.feature_size
    assert block_names(model) == list(spec.blocks)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_base_starts_frozen_and_only_the_classifier_trains(spec, registry_model):
    model = registry_model(spec.name)

    assert model.name == spec.name
    assert model.get_layer("base").trainable_weights == []
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_pixels_are_normalised_exactly_once(spec, registry_model, pixels):
    model = registry_model(spec.name)
    base = model.get_layer("base")
    inside = leading_normalisers(base)
    outside = layers_before_base(model)

    if spec.preprocessing == "none":
        assert inside and not outside
        normalised = keras.ops.convert_to_numpy(keras.Model(base.input, inside[-1].output)(pixels))
        assert -3 < normalised.min() < normalised.max() < 3  # raw pixels reach 255
    else:
        assert len(outside) == 1 and not inside


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_no_backbone_gets_the_tutorials_rescale_by_1_255(spec, registry_model):
    black_and_white = np.stack([np.zeros((96, 96, 3)), np.full((96, 96, 3), 255.0)]).astype("float32")
    x = black_and_white
    for layer in layers_before_base(registry_model(spec.name)):
        x = keras.ops.convert_to_numpy(layer(x))

    assert not np.allclose(x, black_and_white / 255.0)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("efficientnet_lite0", lambda x: (x - 127.0) / 128.0),
        ("mobilenet_v2", mobilenet_v2.preprocess_input),
        ("mobilenet_v3_small", mobilenet_v3.preprocess_input),
        ("resnet50", resnet50.preprocess_input),
        ("densenet121", densenet.preprocess_input),
    ],
)
def test_model_fed_raw_pixels_matches_base_on_keras_preprocessed_input(name, reference, registry_model, pixels):
    model = registry_model(name)
    features = keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer("pooling").output)(pixels))

    base_output = model.get_layer("base")(reference(pixels.copy()), training=False)
    expected = keras.ops.convert_to_numpy(keras.ops.mean(base_output, axis=(1, 2)))

    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.slow
def test_batchnorm_stays_in_inference_mode_when_the_base_trains(pixels):
    # ImageNet weights (offline): with random ones the activations saturate and no gradient reaches the base.
    model = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=96, dropout=0)
    unfreeze_all(model)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    base = model.get_layer("base")
    bn, conv = base.get_layer("top_bn"), base.get_layer("top_conv")
    stats = [w.numpy() for w in bn.weights]
    kernel = conv.kernel.numpy()

    model.fit(pixels, np.array([0, 2]), epochs=1, batch_size=2, verbose=0)

    assert not np.array_equal(conv.kernel.numpy(), kernel)  # the base did train
    for before, after in zip(stats, bn.weights, strict=True):
        np.testing.assert_array_equal(after.numpy(), before)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(pixels, training=True)),
        keras.ops.convert_to_numpy(model(pixels, training=False)),
        rtol=1e-6,
    )


@pytest.mark.slow
def test_trained_batchnorm_uses_batch_statistics_as_documented(pixels):
    model = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=96, dropout=0)
    unfreeze_all(model, train_batchnorm=True)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    bn = model.get_layer("base").get_layer("top_bn")
    gamma, moving_mean = bn.gamma.numpy(), bn.moving_mean.numpy()

    model.fit(pixels, np.array([0, 2]), epochs=1, batch_size=2, verbose=0)

    assert not np.array_equal(bn.gamma.numpy(), gamma)
    assert not np.array_equal(bn.moving_mean.numpy(), moving_mean)


def test_class_names_set_the_number_of_outputs():
    model = build_model("efficientnet_lite0", ["cat", "dog", "fox", "owl"], weights="none", input_size=64)

    assert model.output_shape == (None, 4)


def test_head_options_shape_the_head():
    model = build_model(
        "efficientnet_lite0", 2, weights="none", input_size=96, pooling="flatten", dense_units=8, dropout=0.5
    )

    assert model.get_layer("pooling").output.shape == (None, 3 * 3 * 1280)
    assert model.get_layer("head_dense").units == 8
    assert model.get_layer("head_dropout").rate == 0.5


@pytest.mark.slow
def test_max_pooling_and_no_dropout():
    model = build_model("efficientnet_lite0", 2, weights="none", input_size=64, pooling="max", dropout=0)

    assert isinstance(model.get_layer("pooling"), keras.layers.GlobalMaxPooling2D)
    assert "head_dropout" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize(
    ("backbone", "classes", "kwargs", "message"),
    [
        ("efficientnet_lite9", 2, {}, "unknown backbone 'efficientnet_lite9'"),
        ("efficientnet_lite0", 1, {}, "at least 2 classes; got 1"),
        ("efficientnet_lite0", ["cat", "cat"], {}, "unique"),
        ("efficientnet_lite0", "cats", {}, "number of classes or a list"),
        ("efficientnet_lite0", 2, {"pooling": "mean"}, "pooling='mean'.*avg, max, flatten"),
        ("efficientnet_lite0", 2, {"dense_units": -4}, "dense_units=-4"),
        ("efficientnet_lite0", 2, {"dropout": 1.0}, r"dropout=1.0 must be in \[0, 1\)"),
        ("efficientnet_lite0", 2, {"input_size": 8}, "input_size=8"),
    ],
)
def test_bad_arguments_are_refused_with_the_bad_value(backbone, classes, kwargs, message):
    with pytest.raises(TLToolsError, match=message):
        build_model(backbone, classes, weights="none", **kwargs)


@pytest.mark.slow
def test_imagenet_classifier_takes_raw_pixels_and_gives_1000_probabilities(pixels):
    model = build_imagenet_classifier("efficientnet_lite0", input_size=96, weights="none")

    probs = model.predict(pixels, verbose=0)

    assert isinstance(model.layers[1], keras.layers.Rescaling)
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_frozen_and_unfrozen_base_compute_the_same_features_in_training_mode(spec, registry_model, pixels):
    """Keras 3's fit calls the base with training=True; the base must still act as in inference.

    BatchNorm stays frozen (inference mode) and the backbones' own dropout is removed, so the
    features a training step sees are the ones prediction sees.
    """
    model = registry_model(spec.name)
    base = model.get_layer("base")
    for change in (unfreeze_all, freeze_base):  # ends frozen, as the shared model was built
        change(model)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(base(pixels, training=True)),
            keras.ops.convert_to_numpy(base(pixels, training=False)),
            rtol=1e-5,
            atol=1e-7,
        )


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "mobilenet_v2"])
@pytest.mark.slow
def test_a_seed_builds_the_same_random_model_whatever_was_drawn_before(backbone):
    import random

    def build(seed, python_seed):
        random.seed(python_seed)  # what other threads building models do to the draws Keras makes
        keras.random.uniform((3,))
        return build_model(backbone, 3, weights="none", input_size=96, dense_units=8, dropout=0.3,
                           seed=seed).get_weights()

    first, again, other = build(1, python_seed=10), build(1, python_seed=20), build(2, python_seed=10)

    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    randomised = [index for index, weights in enumerate(first) if np.unique(weights).size > 2]
    assert len(randomised) >= 10, "base and head start from random weights"
    assert all(not np.array_equal(first[index], other[index]) for index in randomised)
