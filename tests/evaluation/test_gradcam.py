"""Grad-CAM on a transfer model (before and after saving) and on a toy model whose answer is known."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from tltools.errors import TLToolsError
from tltools.evaluation.gradcam import gradcam, jet
from tltools.model import build_model, load_model, save_model

SIZE = 16  # toy model input; its feature map is 8 x 8 (one cell = 2 x 2 pixels)
CLASSES = ["bright", "dark"]


def toy_model(weight: float = 4.0) -> keras.Model:
    """Input -> Rescaling -> nested conv "base" -> GAP -> Dense softmax.

    Feature channel 0 is a pixel's brightness (0..1), channel 1 its darkness
    (1 - brightness); class "bright" scores ``weight`` x channel 0, class "dark"
    ``weight`` x channel 1.
    """
    base_input = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name="brightness")
    base = keras.Model(base_input, keras.layers.AveragePooling2D(2)(conv(base_input)), name="base")
    inputs = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(base(x, training=False))
    predictions = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inputs, predictions(x), name="toy")
    conv.set_weights([np.tile(np.array([1 / 3, -1 / 3], "float32"), (1, 1, 3, 1)), np.array([0.0, 1.0], "float32")])
    predictions.set_weights([weight * np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    return model


def patch_image(row: int, col: int) -> np.ndarray:
    """A dark grey image with a white 4 x 4 patch whose top-left pixel is (row, col)."""
    image = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
    image[row:row + 4, col:col + 4] = 255
    return image


@pytest.fixture(scope="module")
def toy():
    return toy_model()


@pytest.fixture(scope="module")
def transfer():
    """A random-weight EfficientNet-Lite0 transfer model at 64 px whose class 0 sums all feature channels."""
    keras.utils.set_random_seed(0)
    model = build_model("efficientnet_lite0", ["a", "b", "c"], weights="none", input_size=64)
    kernel, bias = model.get_layer("predictions").get_weights()
    kernel[:] = 0.0
    kernel[:, 0] = 1.0
    model.get_layer("predictions").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(("row", "col"), [(2, 10), (10, 2)])
def test_heatmap_peaks_on_the_evidence(toy, row, col):
    cam = gradcam(toy, patch_image(row, col), class_index=0)
    peak = np.unravel_index(np.argmax(cam.heatmap), cam.heatmap.shape)
    assert cam.heatmap.shape == (SIZE // 2, SIZE // 2)
    assert row // 2 <= peak[0] < (row + 4) // 2 and col // 2 <= peak[1] < (col + 4) // 2
    assert cam.heatmap.max() == pytest.approx(1.0)


def test_heatmap_of_the_other_class_avoids_the_patch(toy):
    cam = gradcam(toy, patch_image(2, 10), class_index=1)
    assert np.all(cam.heatmap[1:3, 5:7] == 0.0)
    assert cam.heatmap.max() == pytest.approx(1.0)


def test_a_saturated_prediction_still_gets_a_heatmap():
    # Probability 1.0 exactly has no gradient; Grad-CAM differentiates the score before the softmax.
    image = 255 - patch_image(2, 10)  # white, with a dark patch
    sure = toy_model(weight=400.0)
    assert sure.predict(image[None].astype("float32"), verbose=0)[0, 0] == 1.0
    cam = gradcam(sure, image)
    assert cam.class_index == 0 and cam.heatmap.max() == pytest.approx(1.0)
    assert np.all(cam.heatmap[1:3, 5:7] == 0.0) and cam.heatmap[6, 1] == pytest.approx(1.0)


def test_default_class_is_the_predicted_one_with_its_probability(toy):
    image = patch_image(2, 10)
    probs = toy.predict(image[None].astype("float32"), verbose=0)[0]
    cam = gradcam(toy, image)
    assert cam.class_index == int(np.argmax(probs)) == 1  # mostly dark
    assert cam.probability == pytest.approx(float(probs[1]), abs=1e-6)


def test_image_sources_give_the_same_heatmap(toy):
    image = patch_image(10, 2)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    from_array = gradcam(toy, image, class_index=0).heatmap
    np.testing.assert_array_equal(gradcam(toy, buffer.getvalue(), class_index=0).heatmap, from_array)
    np.testing.assert_array_equal(gradcam(toy, Image.fromarray(image), class_index=0).heatmap, from_array)


def test_overlay_colours_the_evidence_red_and_the_rest_blue(toy):
    image = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
    image[4:8, 4:8] = 255
    cam = gradcam(toy, image, class_index=0, alpha=1.0)
    overlay = np.asarray(cam.overlay).astype(int)
    assert cam.overlay.size == (SIZE, SIZE) and cam.overlay.mode == "RGB"
    hot, cold = overlay[5, 5], overlay[15, 15]
    assert hot[0] > hot[2] and cold[2] > cold[0]
    plain = gradcam(toy, image, class_index=0, alpha=0.0)
    np.testing.assert_array_equal(np.asarray(plain.overlay), image)


def test_jet_colour_map_ends():
    np.testing.assert_allclose(jet(np.array([0.0, 1.0])), [[0.0, 0.0, 0.5], [0.5, 0.0, 0.0]])


@pytest.mark.slow
def test_transfer_model_heatmap_is_the_positive_channel_sum(transfer, photo):
    # With class 0 weighting every channel by 1, Grad-CAM is the feature map summed over channels.
    features = transfer.get_layer("base")(transfer.get_layer("preprocess_lite")(photo[None].astype("float32")))
    expected = np.maximum(np.asarray(features)[0].sum(axis=-1), 0)
    cam = gradcam(transfer, photo, class_index=0)
    assert cam.heatmap.dtype == np.float32
    assert cam.heatmap.shape == tuple(features.shape[1:3]) == (2, 2)
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() == pytest.approx(1.0)
    np.testing.assert_allclose(cam.heatmap, expected / expected.max(), rtol=1e-4, atol=1e-6)
    assert cam.overlay.size == (64, 64)
    probs = transfer.predict(photo[None].astype("float32"), verbose=0)[0]
    assert cam.probability == pytest.approx(float(probs[0]), abs=1e-6)


def test_class_without_evidence_has_an_empty_heatmap(transfer, photo):
    cam = gradcam(transfer, photo, class_index=1)
    assert cam.class_index == 1
    assert not cam.heatmap.any()


@pytest.mark.slow
def test_same_result_after_save_and_load(transfer, photo, tmp_path):
    save_model(transfer, tmp_path / "model.keras", ["a", "b", "c"])
    loaded, _, _ = load_model(tmp_path)
    before, after = gradcam(transfer, photo, class_index=0), gradcam(loaded, photo, class_index=0)
    np.testing.assert_allclose(after.heatmap, before.heatmap, rtol=1e-5, atol=1e-6)
    assert after.probability == pytest.approx(before.probability)
    np.testing.assert_array_equal(np.asarray(after.overlay), np.asarray(before.overlay))


def test_model_without_base_is_refused():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    plain = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(TLToolsError, match="no nested 'base' model"):
        gradcam(plain, patch_image(0, 0))


@pytest.mark.parametrize(("arguments", "message"), [({"class_index": 2}, r"class_index=2 .* 0\.\.1"),
                                                    ({"alpha": 1.5}, "alpha=1.5")])
def test_bad_arguments_are_refused(toy, arguments, message):
    with pytest.raises(TLToolsError, match=message):
        gradcam(toy, patch_image(0, 0), **arguments)
