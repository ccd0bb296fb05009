"""The registry: its entries, lookup by name, and building a backbone from each weights source."""

import re
import urllib.error

import h5py
import keras
import numpy as np
import pytest
from keras.src.applications import imagenet_utils
from keras.src.backend import config as keras_config
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from tltools.backbones import create_backbone, get_backbone, list_backbones
from tltools.errors import TLToolsError

REQUIRED = (
    "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2", "mobilenet_v3_small",
    "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_v2_b0", "efficientnet_v2_b1", "efficientnet_v2_b2", "efficientnet_v2_b3", "resnet50",
    "resnet50_v2", "vgg16", "vgg19", "inception_v3", "xception", "densenet121", "convnext_tiny",
)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Make every Keras download fail as it does without internet access, with an empty Keras cache."""
    attempts = []

    def fail(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", fail)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))
    return attempts


@pytest.fixture(scope="module")
def lite0_random_file(tmp_path_factory):
    """A weights file saved from a randomly initialised EfficientNet-Lite0 base, with its weights."""
    base = create_backbone("efficientnet_lite0", weights="none", input_size=96)
    path = tmp_path_factory.mktemp("weights") / "lite0.weights.h5"
    base.save_weights(path)
    return path, [w.numpy() for w in base.weights]


def test_registry_has_every_required_backbone_once():
    names = [spec.name for spec in list_backbones()]

    assert len(names) == len(set(names))
    assert set(REQUIRED) <= set(names)


KERAS_APPS = [spec for spec in list_backbones() if not spec.name.startswith("efficientnet_lite")]


class _DefaultSize(Exception):
    """Raised by the patched ``obtain_input_shape`` to report the default size a Keras application asked for."""


@pytest.fixture
def keras_default_size(monkeypatch):
    """Return ``size(spec)``: the input size Keras' own application defaults to, without building it."""

    def report(input_shape, default_size, *args, **kwargs):
        raise _DefaultSize(default_size)

    monkeypatch.setattr(imagenet_utils, "obtain_input_shape", report)

    def size(spec):
        with pytest.raises(_DefaultSize) as reported:
            spec.constructor(input_shape=None, include_top=True, weights=None)
        return reported.value.args[0]

    return size


def test_default_size_is_the_size_keras_builds_its_imagenet_model_at(keras_default_size):
    # MobileNetV3 is left out: Keras builds it at any size and names no default.
    specs = [spec for spec in KERAS_APPS if not spec.name.startswith("mobilenet_v3")]
    assert {spec.name: spec.default_size for spec in specs} == {spec.name: keras_default_size(spec) for spec in specs}


@pytest.mark.parametrize("spec", [spec for spec in list_backbones() if spec.offline], ids=lambda spec: spec.name)
def test_backbones_that_claim_offline_weights_load_them_without_a_download(spec, no_network):
    base = create_backbone(spec.name, weights="imagenet", input_size=64)

    # A random BatchNorm starts with moving variance 1; the trained one does not.
    assert not np.allclose(base.get_layer("top_bn").moving_variance.numpy(), 1.0)
    assert no_network == []


def test_the_default_backbone_is_listed_first_and_loads_offline():
    assert list_backbones()[0].name == "efficientnet_lite0"
    assert list_backbones()[0].offline  # checked for real by the test above


def test_published_top1_grows_with_the_model_within_each_family():
    # In the Keras applications table accuracy and size grow together along each family; a swapped entry breaks that.
    for family in (["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"],
                   ["efficientnet_v2_b0", "efficientnet_v2_b1", "efficientnet_v2_b2", "efficientnet_v2_b3"],
                   ["mobilenet_v2", "efficientnet_b0", "convnext_tiny"]):
        top1 = [get_backbone(name).top1 for name in family]
        params = [get_backbone(name).params for name in family]
        assert top1 == sorted(top1) and len(set(top1)) == len(top1), dict(zip(family, top1))
        assert params == sorted(params), dict(zip(family, params))
    assert get_backbone("mobilenet_v3_small").top1 is None  # not in the Keras applications table
    assert all(spec.top1 is None or 70 < spec.top1 < 85 for spec in list_backbones())


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(TLToolsError, match=r"unknown backbone 'resnet5000'.*efficientnet_lite0.*convnext_tiny"):
        get_backbone("resnet5000")


def test_block_of_reads_the_block_from_a_layer_name():
    spec = get_backbone("efficientnet_lite0")

    assert spec.block_of("block6a_expand_conv") == "6"
    assert spec.block_of("top_conv") is None
    assert get_backbone("inception_v3").block_of("mixed5") is None


def test_headless_backbone_ends_in_the_feature_map():
    base = create_backbone("efficientnet_lite0", weights="none", input_size=96)

    assert base.output_shape == (None, 3, 3, 1280)


@pytest.mark.slow
def test_backbone_with_top_returns_1000_imagenet_probabilities():
    model = create_backbone("efficientnet_lite0", weights="none", input_size=96, include_top=True)

    probs = model.predict(np.zeros((1, 96, 96, 3), "float32"), verbose=0)

    assert probs.shape == (1, 1000)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_failed_imagenet_download_names_the_offline_remedies(no_network):
    with pytest.raises(TLToolsError) as raised:
        create_backbone("mobilenet_v3_small", weights="imagenet")

    message = str(raised.value)
    assert "mobilenet_v3_small" in message and "no internet access" in message
    assert "efficientnet_lite0" in message and ".weights.h5" in message and "weights='none'" in message
    assert len(no_network) == 1


def test_bad_arguments_are_not_reported_as_a_download_failure(no_network):
    # Keras only has ImageNet heads for ResNet50 at 224 pixels.
    with pytest.raises(TLToolsError, match="cannot build resnet50 with input_size=96.*224") as raised:
        create_backbone("resnet50", weights="imagenet", input_size=96, include_top=True)

    assert "internet" not in str(raised.value)
    assert no_network == []


@pytest.mark.parametrize("size", [16, 31, 96.0, "96", True])
def test_unusable_input_size_is_refused_with_the_minimum(size):
    with pytest.raises(TLToolsError, match=rf"input_size={size!r}.*at least 32"):
        create_backbone("efficientnet_lite0", weights="none", input_size=size)


def test_inception_needs_at_least_75_pixels():
    with pytest.raises(TLToolsError, match="at least 75"):
        create_backbone("inception_v3", weights="none", input_size=64)


@pytest.mark.slow
def test_weights_file_is_loaded_into_the_base(lite0_random_file):
    path, saved = lite0_random_file

    base = create_backbone("efficientnet_lite0", weights=path, input_size=128)

    assert all(np.array_equal(w.numpy(), s) for w, s in zip(base.weights, saved, strict=True))


@pytest.mark.slow
def test_keras2_h5_weights_file_is_loaded_too(lite0_random_file, tmp_path):
    _, saved = lite0_random_file
    source = create_backbone("efficientnet_lite0", weights="none", input_size=96)
    source.set_weights(saved)
    path = tmp_path / "lite0_keras2.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, source)

    base = create_backbone("efficientnet_lite0", weights=str(path), input_size=96)

    assert all(np.array_equal(w.numpy(), s) for w, s in zip(base.weights, saved, strict=True))


def test_weights_file_of_another_backbone_names_expected_and_found_shapes(tmp_path):
    other = create_backbone("mobilenet_v3_small", weights="none", input_size=96)
    path = tmp_path / "v3small.weights.h5"
    other.save_weights(path)

    with pytest.raises(TLToolsError) as raised:
        create_backbone("efficientnet_lite0", weights=path, input_size=96)

    message = str(raised.value)
    assert str(path) in message and "does not fit efficientnet_lite0" in message
    assert "stem_conv/kernel (3, 3, 3, 32)" in message  # Lite0's first weight, absent from the file
    lite0 = create_backbone("efficientnet_lite0", weights="none", input_size=96)
    assert f"({len(lite0.weights)} arrays expected, {len(other.weights)} found)" in message
    assert re.search(r"In the file but not expected: layers/\S+ \(\d+,\)", message)


def test_weights_file_of_a_bigger_variant_does_not_fit(tmp_path):
    lite1 = create_backbone("efficientnet_lite1", weights="none", input_size=96)
    path = tmp_path / "lite1.weights.h5"
    lite1.save_weights(path)

    with pytest.raises(TLToolsError, match=r"does not fit efficientnet_lite0 \(\d+ arrays expected, \d+ found\)"):
        create_backbone("efficientnet_lite0", weights=path, input_size=96)


def test_missing_weights_file_is_reported(tmp_path):
    with pytest.raises(TLToolsError, match="weights file not found: .*nothing.weights.h5"):
        create_backbone("efficientnet_lite0", weights=tmp_path / "nothing.weights.h5", input_size=96)


@pytest.mark.parametrize("weights", ["imagenet21k", "model.keras", 3])
def test_unknown_weights_source_is_refused(weights):
    with pytest.raises(TLToolsError, match="imagenet.*none"):
        create_backbone("efficientnet_lite0", weights=weights, input_size=96)


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not weights")

    with pytest.raises(TLToolsError, match="not an HDF5 file"):
        create_backbone("efficientnet_lite0", weights=path, input_size=96)


@pytest.mark.slow
def test_random_weights_differ_between_builds():
    first = create_backbone("efficientnet_lite0", weights="none", input_size=64)
    second = create_backbone("efficientnet_lite0", weights=None, input_size=64)

    assert not np.array_equal(first.get_layer("stem_conv").kernel.numpy(), second.get_layer("stem_conv").kernel.numpy())
    assert isinstance(first, keras.Model)
