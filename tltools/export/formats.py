"""One entry point, :func:`export_model`, that writes a model in any export format and verifies it.

Every export is written to a temporary file beside the target; when check
images are given, the written file is loaded back (or run in a TFLite
interpreter) and its probabilities compared with the Keras model's before the
file is renamed onto the target. An export further off than its format's
tolerance raises and leaves nothing behind, so a broken file is never offered.
"""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from tltools.errors import TLToolsError
from tltools.export import tflite
from tltools.export.onnx import predict_onnx, write_onnx
from tltools.export.bundle import predict_bundle, write_bundle
from tltools.export.checks import compare, enforce
from tltools.export.savedmodel import predict_saved_model_zip, write_saved_model_zip
from tltools.fileio import atomic_path
from tltools.model.io import check_class_names, load_model, save_model

INT8 = "tflite-int8"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: The file written.
        format: The export format (a key of :data:`FORMATS`).
        size_bytes: The file's size.
        check: ``{"max_prob_diff", "top1_agreement", "images"}`` comparing the
            export with the Keras model on the check images, or None when no
            check images were given.
        notes: Things the user should know: how to feed the model, or why
            the check was skipped.
    """

    path: Path
    format: str
    size_bytes: int
    check: dict | None
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """How one format is written, read back, and how close it must stay to the Keras model.

    Attributes:
        suffix: The file name ending the format requires.
        write: ``write(model, class_names, path, metadata, representative_images)``
            writes the file and returns notes for the user.
        predict: ``predict(path, uint8_images)`` loads the written file and
            returns its probabilities.
        tolerance: Largest max probability difference accepted by the check;
            None for int8, which is approximate by design.
        description: One line for help texts.
    """

    suffix: str
    write: Callable[..., tuple[str, ...]]
    predict: Callable[[Path, np.ndarray], np.ndarray]
    tolerance: float | None
    description: str


def _write_model_file(model, class_names, path, metadata, _representative):
    save_model(model, path, class_names, metadata)
    return ()


def _predict_model_file(path, images):
    model, _, _ = load_model(path)
    return model.predict(images.astype(np.float32), verbose=0)


def _write_saved_model(model, class_names, path, _metadata, _representative):
    write_saved_model_zip(model, class_names, path)
    return ()


# TFLite and ONNX files hold no class names, so their users are told where the names are.
LABELS_NOTE = ("the file holds no class names: output i is the class on line i + 1 of labels.txt (in the run "
               "folder, and beside the model in the bundle export)")


def _tflite_writer(variant: str):
    def write(model, _class_names, path, _metadata, representative):
        return (*tflite.write_tflite(model, path, variant, representative), LABELS_NOTE)

    return write


def _write_onnx(model, _class_names, path, _metadata, _representative):
    return (*write_onnx(model, path), LABELS_NOTE)


def _write_bundle(model, class_names, path, metadata, _representative):
    write_bundle(model, class_names, path, metadata)
    return ()


FORMATS: dict[str, ExportFormat] = {
    "keras": ExportFormat(".keras", _write_model_file, _predict_model_file, 1e-6, "Keras model with class names"),
    "h5": ExportFormat(".h5", _write_model_file, _predict_model_file, 1e-6, "legacy Keras HDF5 model"),
    "savedmodel": ExportFormat(".zip", _write_saved_model, predict_saved_model_zip, 1e-5, "zipped TF SavedModel"),
    "tflite": ExportFormat(".tflite", _tflite_writer(tflite.FLOAT32), tflite.predict_tflite, 1e-4, "TFLite float32"),
    "tflite-fp16": ExportFormat(
        ".tflite", _tflite_writer(tflite.FLOAT16), tflite.predict_tflite, 5e-2, "TFLite, float16 weights"
    ),
    INT8: ExportFormat(
        ".tflite", _tflite_writer(tflite.INT8), tflite.predict_tflite, None, "TFLite full-integer int8, uint8 input"
    ),
    "onnx": ExportFormat(".onnx", _write_onnx, predict_onnx, 1e-4, "ONNX (float32 pixels 0..255 in), ONNX Runtime"),
    "bundle": ExportFormat(".zip", _write_bundle, predict_bundle, 1e-6, "zip: model, labels, predict.py, model card"),
}


def check_target(fmt: str, out_path) -> Path:
    """Return ``out_path`` as a Path after checking ``fmt`` is known and the path ends in its suffix.

    Raises:
        TLToolsError: For an unknown format (the message lists the valid ones)
            or a path with the wrong suffix.
    """
    if fmt not in FORMATS:
        raise TLToolsError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    path = Path(out_path)
    suffix = FORMATS[fmt].suffix
    if path.suffix.lower() != suffix:
        raise TLToolsError(f"the {fmt} export is a {suffix} file; got {str(path)!r}, name it e.g. {path.stem}{suffix}")
    return path


def export_model(
    model: keras.Model,
    class_names: Sequence[str],
    fmt: str,
    out_path,
    *,
    metadata: dict | None = None,
    representative_images: np.ndarray | None = None,
    check_images: np.ndarray | None = None,
) -> ExportResult:
    """Write ``model`` in format ``fmt`` to ``out_path``, verified against the Keras model.

    Formats (:data:`FORMATS`): ``keras`` and ``h5`` (via
    :func:`tltools.model.io.save_model`, class names inside), ``savedmodel``
    (zip, :mod:`tltools.export.savedmodel`), ``tflite``, ``tflite-fp16``,
    ``tflite-int8`` (:mod:`tltools.export.tflite`, which documents the int8
    model's uint8 input), ``onnx`` (:mod:`tltools.export.onnx`, read back with
    ONNX Runtime) and ``bundle`` (zip, :mod:`tltools.export.bundle`).

    Args:
        model: A Keras model taking RGB 0..255 and returning probabilities.
        class_names: One name per output, in output order.
        fmt: The export format.
        out_path: The file to write; its suffix must be the format's
            (``.keras``, ``.h5``, ``.zip``, ``.tflite`` or ``.onnx``).
        metadata: Saved with ``keras``, ``h5`` and ``bundle`` exports; the
            bundle's model card also shows its ``config``, ``dataset`` and
            ``metrics`` dicts.
        representative_images: ``uint8`` (N, size, size, 3) training images
            that calibrate int8 quantisation (about 100); required for
            ``tflite-int8``, unused otherwise.
        check_images: ``uint8`` (N, size, size, 3) images run through the
            export and the Keras model; None skips the check.

    Returns:
        The :class:`ExportResult`.

    Raises:
        TLToolsError: For an unknown format, a wrong suffix, class names that
            do not fit, unusable images, missing representative images for
            int8, a failed conversion, or an export that disagrees with the
            Keras model beyond its format's tolerance (float32 TFLite: 1e-4).
    """
    path = check_target(fmt, out_path)
    spec = FORMATS[fmt]
    names = check_class_names(class_names, model.output_shape[-1])
    size = model.input_shape[1]
    if fmt == INT8 and representative_images is None:
        raise TLToolsError(
            "tflite-int8 export needs representative training images to calibrate the quantisation "
            "(about 100, uint8); pass representative_images, or export tflite-fp16 instead"
        )
    representative = _image_batch(representative_images, size, "representative_images")
    check_batch = _image_batch(check_images, size, "check_images")
    check = None
    with atomic_path(path) as temporary:
        notes = spec.write(model, names, temporary, metadata, representative)
        if check_batch is not None:
            expected = model.predict(check_batch.astype(np.float32), verbose=0)
            check = compare(expected, spec.predict(temporary, check_batch))
            enforce(check, fmt, spec.tolerance)
    return ExportResult(path=path, format=fmt, size_bytes=path.stat().st_size, check=check, notes=tuple(notes))


def _image_batch(images, size: int, name: str) -> np.ndarray | None:
    """Return ``images`` as a ``uint8`` (N, size, size, 3) array, or None when None.

    Raises:
        TLToolsError: The array is empty, not ``uint8``, or has another shape.
    """
    if images is None:
        return None
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (size, size, 3) or len(array) == 0:
        raise TLToolsError(
            f"{name} must be a non-empty uint8 array of shape (N, {size}, {size}, 3) for this model; got "
            f"{array.dtype} {array.shape} (decode images with tltools.data.pipeline.decode_images(paths, {size}))"
        )
    return array
