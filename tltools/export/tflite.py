"""TensorFlow Lite export: float32, float16 weights, or full-integer int8.

Route: Keras ``model.export(format="tf_saved_model")`` into a temporary
folder, then ``tf.lite.TFLiteConverter.from_saved_model``. It is the route
Keras' own ``model.export(format="litert")`` takes, but here the models are
restricted to built-in TFLite ops (no Flex/Select-TF ops), so any TFLite or
LiteRT runtime runs them without extra delegates.

What each variant takes and returns (one image per call, batch 1):

==============  =======================================  ===========================
variant         input                                    output
==============  =======================================  ===========================
``float32``     float32 RGB 0..255, (1, size, size, 3)   float32 probabilities
``float16``     the same; weights stored as float16      float32 probabilities
``int8``        **uint8** RGB 0..255, (1, size, size, 3) float32 probabilities
==============  =======================================  ===========================

The int8 model is fully integer inside (int8 weights and activations,
calibrated on representative images); its input is uint8 because that is
what a camera or an image decoder gives, and its scale is 1 with zero point 0
whenever the representative images span 0..255 (the input details'
``quantization`` says so; :func:`predict_tflite` applies it either way). Its
output is dequantised to float32 probabilities, so code written for the
float models reads it unchanged.
"""

import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltools.errors import TLToolsError
from tltools.export.savedmodel import write_saved_model

FLOAT32, FLOAT16, INT8 = "float32", "float16", "int8"
VARIANTS = (FLOAT32, FLOAT16, INT8)


def write_tflite(
    model: keras.Model, path: Path, variant: str, representative_images: np.ndarray | None = None
) -> tuple[str, ...]:
    """Convert ``model`` to a ``.tflite`` file.

    Args:
        model: The Keras model (float input in 0..255).
        path: The ``.tflite`` file to write.
        variant: One of :data:`VARIANTS`.
        representative_images: ``uint8`` array (N, size, size, 3) that
            calibrates the int8 quantisation; required for ``int8`` only.

    Returns:
        Notes for the user about the file (the int8 input quantisation).

    Raises:
        TLToolsError: If the converter fails (e.g. an op without an int8
            kernel), naming the model and a variant to try instead.
        ValueError: For an unknown variant, or int8 without representative
            images (callers check both first).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; use one of {VARIANTS}")
    with tempfile.TemporaryDirectory(prefix="tltools-tflite-") as folder:
        write_saved_model(model, Path(folder))
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        _configure(converter, variant, representative_images)
        try:
            flatbuffer = converter.convert()
        # The converter's own error types are not public API; anything it raises means "cannot convert".
        except Exception as error:
            remedy = "export tflite-fp16 or tflite instead" if variant == INT8 else "export savedmodel instead"
            raise TLToolsError(
                f"TFLite {variant} conversion of model {model.name!r} failed ({_first_line(error)}); {remedy}"
            ) from None
    path.write_bytes(flatbuffer)
    if variant != INT8:
        return ()
    scale, zero_point = tflite_input_details(path)["quantization"]
    note = f"input: uint8 RGB pixels 0..255 (scale {scale:g}, zero point {zero_point}); output: float32 probabilities"
    return (note,)


def predict_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    """Run a ``.tflite`` classifier on ``images`` one by one, as a device would.

    Integer inputs are quantised and integer outputs dequantised with the
    tensors' own scale and zero point, so every variant is fed the same pixels.

    Args:
        path: The ``.tflite`` file.
        images: ``uint8`` array (N, size, size, 3).

    Returns:
        Class probabilities, shape (N, classes), float32.
    """
    interpreter = _interpreter(path)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    probs = []
    for image in images:
        interpreter.set_tensor(source["index"], _quantize(image[None].astype(np.float32), source))
        interpreter.invoke()
        probs.append(_dequantize(interpreter.get_tensor(target["index"])[0], target))
    return np.stack(probs)


def tflite_input_details(path: Path) -> dict:
    """Return the interpreter's details of the model's input tensor (dtype, shape, quantization)."""
    return _interpreter(path).get_input_details()[0]


def _configure(converter: tf.lite.TFLiteConverter, variant: str, representative_images) -> None:
    """Set the converter's optimisation, ops and input/output types for ``variant``."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == INT8:
        if representative_images is None:
            raise ValueError("int8 conversion needs representative images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None].astype(np.float32)] for image in representative_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32


def _interpreter(path: Path, num_threads: int | None = None):
    """Return a TFLite interpreter for ``path``: LiteRT's when installed, else TensorFlow's.

    ``num_threads`` sets the interpreter's threads (None: its default); :attr:`interpreter.runtime`
    names which runtime it is (``litert`` or ``tflite``), for latency reports.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        runtime = "litert"
    except ImportError:
        Interpreter, runtime = tf.lite.Interpreter, "tflite"
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to ai_edge_litert; it still works in TF 2.21.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.runtime = runtime
    return interpreter


def _quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Return float ``values`` in the tensor's dtype, quantised with its scale and zero point."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    limits = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), limits.min, limits.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Return a tensor's ``values`` as float32, undoing its quantisation if it is an integer tensor."""
    if np.issubdtype(detail["dtype"], np.floating):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _first_line(error: Exception) -> str:
    """Return the first non-empty line of an error message (converter errors span pages)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
