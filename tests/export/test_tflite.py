"""TFLite exports (float32, float16, int8) run in a TFLite interpreter and agree with the Keras model."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.export.helpers import CLASSES, SIZE
from tltools.errors import TLToolsError
from tltools.export import FORMATS, export_model, export_run
from tltools.export.formats import LABELS_NOTE
from tltools.export import tflite
from tltools.export.checks import compare, enforce

pytestmark = pytest.mark.slow  # builds, trains or exports real models


@pytest.fixture(scope="module")
def float32(tmp_path_factory, model, images):
    return export_model(model, CLASSES, "tflite", tmp_path_factory.mktemp("f32") / "m.tflite", check_images=images)


@pytest.fixture(scope="module")
def float16(tmp_path_factory, model, images):
    return export_model(model, CLASSES, "tflite-fp16", tmp_path_factory.mktemp("f16") / "m.tflite", check_images=images)


@pytest.fixture(scope="module")
def int8(tmp_path_factory, run):
    """The int8 export of the run: calibrated and checked on the run's own training images."""
    return export_run(run, "tflite-int8", tmp_path_factory.mktemp("int8") / "m.tflite")


def _interpreter(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _run(path, inputs):
    """Feed ``inputs`` to the .tflite model one by one, unchanged; return its outputs."""
    interpreter = _interpreter(path)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for pixels in inputs:
        interpreter.set_tensor(source["index"], pixels[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0])
    return np.stack(outputs)


def test_float32_takes_float_pixels_and_matches_keras_within_1e_4(float32, images, expected):
    source = _interpreter(float32.path).get_input_details()[0]
    assert source["dtype"] == np.float32 and list(source["shape"]) == [1, SIZE, SIZE, 3]
    np.testing.assert_allclose(_run(float32.path, images.astype(np.float32)), expected, atol=1e-4)
    assert float32.check["max_prob_diff"] <= 1e-4
    assert float32.check["top1_agreement"] == 1.0 and float32.check["images"] == len(images)
    assert float32.notes == (LABELS_NOTE,)  # where the class names are


def test_float16_is_half_the_size_and_within_2e_2(float16, float32, images, expected):
    assert float16.size_bytes < 0.6 * float32.size_bytes
    np.testing.assert_allclose(_run(float16.path, images.astype(np.float32)), expected, atol=2e-2)
    assert 0 < float16.check["max_prob_diff"] <= 2e-2 and float16.check["top1_agreement"] == 1.0


def test_int8_is_integer_inside_takes_uint8_pixels_and_returns_probabilities(int8):
    interpreter = _interpreter(int8.path)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert source["dtype"] == np.uint8 and source["quantization"] == (1.0, 0)
    assert target["dtype"] == np.float32
    floats = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert floats == [target["name"]]  # only the dequantised output: weights and activations are integers
    assert int8.size_bytes < 4.2e6  # about a quarter of the float32 file
    assert int8.notes == ("input: uint8 RGB pixels 0..255 (scale 1, zero point 0); output: float32 probabilities",
                          LABELS_NOTE)


def test_int8_raw_pixels_agree_with_keras_and_the_check_reports_it(int8, images, expected):
    probs = _run(int8.path, images)
    assert np.allclose(probs.sum(axis=1), 1, atol=0.02)
    # The run's check images are these training images in another order; compare() does not depend on order.
    assert int8.check == compare(expected, probs)  # so the check fed the model the same raw pixels
    assert int8.check["images"] == len(images) == 12
    assert int8.check["top1_agreement"] >= 0.9
    assert 0 < int8.check["max_prob_diff"] < 0.5


def test_the_float32_tolerance_is_1e_4_and_enforced():
    assert FORMATS["tflite"].tolerance == 1e-4
    message = "tflite export disagrees with the Keras model: max probability difference 0.0002"
    with pytest.raises(TLToolsError, match=message):
        enforce({"max_prob_diff": 2e-4, "top1_agreement": 1.0, "images": 4}, "tflite", FORMATS["tflite"].tolerance)
    with pytest.raises(TLToolsError, match="tflite-int8 export returns non-finite probabilities"):
        enforce({"max_prob_diff": float("nan"), "top1_agreement": 0.0, "images": 4}, "tflite-int8", None)


def test_a_failed_conversion_is_a_tltools_error_and_writes_nothing(model, tmp_path, monkeypatch):
    class FailingConverter:
        target_spec = type("TargetSpec", (), {})()

        @classmethod
        def from_saved_model(cls, folder):
            return cls()

        def convert(self):
            raise RuntimeError("'tfl.gelu' op is neither a custom op nor a flex op\nmore details")

    monkeypatch.setattr(tflite, "write_saved_model", lambda model, folder: None)
    monkeypatch.setattr(tflite.tf.lite, "TFLiteConverter", FailingConverter)
    message = r"TFLite float16 conversion of model 'efficientnet_lite0' failed \('tfl.gelu' op .* flex op\); export"
    with pytest.raises(TLToolsError, match=message):
        export_model(model, CLASSES, "tflite-fp16", tmp_path / "m.tflite")
    assert not any(tmp_path.iterdir())
