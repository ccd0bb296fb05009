"""ONNX export through Keras' own ``model.export(format="onnx")`` (tf2onnx under the TensorFlow backend).

The ``.onnx`` file takes ``float32`` RGB pixels 0..255 of shape
(N, size, size, 3) on its one input and returns class probabilities, exactly
as the Keras model does (preprocessing is inside the model). It is read back
with ONNX Runtime (:func:`predict_onnx`) and compared with the Keras model
before it is offered, like every other format (:mod:`tltools.export.formats`).
"""

import contextlib
import io
import os
from pathlib import Path

import keras
import numpy as np

from tltools.errors import TLToolsError

NOTE = "input: float32 RGB pixels 0..255, shape (N, {size}, {size}, 3); output: class probabilities"


def write_onnx(model: keras.Model, path: Path) -> tuple[str, ...]:
    """Write ``model`` as an ONNX file at ``path`` and return the note on how to feed it.

    Raises:
        TLToolsError: tf2onnx or onnx is not installed, or the conversion fails
            (the converter's first line is in the message).
    """
    try:
        import onnx  # noqa: F401  (Keras' exporter needs both)
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise TLToolsError(f"the onnx export needs the packages tf2onnx and onnx ({error}); "
                           "`pip install tf2onnx onnx onnxruntime`, or export tflite or savedmodel") from None
    size = model.input_shape[1]
    try:
        model(np.zeros((1, size, size, 3), np.float32), training=False)  # a loaded model must be called before export
        with contextlib.redirect_stdout(io.StringIO()):  # tf2onnx prints its progress
            model.export(str(path), format="onnx", verbose=False)
    except Exception as error:  # the converter raises many types; the user needs its first line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TLToolsError(f"the onnx conversion failed: {first}; export tflite or savedmodel instead") from None
    return (NOTE.format(size=size),)


def onnx_session(path: Path, threads: int | None = None):
    """Return an ONNX Runtime CPU inference session for ``path`` using ``threads`` intra-op threads (None: its default).

    Raises:
        TLToolsError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        raise TLToolsError("reading an onnx export needs onnxruntime; `pip install onnxruntime`") from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])


def predict_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    """Classify ``uint8`` images (N, size, size, 3) with the ONNX file at ``path``; return probabilities (N, classes)."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: np.asarray(images, dtype=np.float32)})[0])
