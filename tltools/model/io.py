"""Saving and loading a model together with its class names and metadata.

A ``.keras`` file is Keras' native zip with one extra member, ``tltools.json``;
an ``.h5`` file is Keras' legacy HDF5 format with the same JSON in the root
attribute ``tltools``. Some backbones (ConvNeXt, MobileNetV3) cannot be stored
in the legacy format; :func:`save_model` checks and says so. Either way Keras
itself still loads the file (the extra data is ignored), and
:func:`load_model` returns the class names with the model.

The JSON is ``{"class_names": [...], "metadata": {...}}``; the metadata
always has ``input_size`` and ``tltools_version``, and ``backbone`` and
``preprocessing`` for models named after a registered backbone (as
``build_model`` names them).

Files are written to a temporary file beside the target and renamed over it,
so a crash never leaves a half-written model under the real name.

Model files are untrusted input (the app's Predict page takes uploads):
:func:`load_model` has :mod:`tltools.model.screening` check the file's size
and every class its configuration names before Keras reads it, then loads it
with Keras' safe mode on.
"""

import json
import os
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import keras

from tltools import __version__
from tltools.backbones import list_backbones
from tltools.errors import TLToolsError
from tltools.limits import Limits, default_limits
from tltools.model.screening import screen_model_file
from tltools.untrusted import first_line

INFO_MEMBER = "tltools.json"
INFO_ATTRIBUTE = "tltools"
RUN_MODEL_FILE = "model.keras"
SUFFIXES = (".keras", ".h5")


def check_class_names(class_names: Sequence[str], num_classes: int | None = None) -> list[str]:
    """Return ``class_names`` as a list after checking it names each output once.

    Args:
        class_names: One non-empty string per class, in output order.
        num_classes: The model's number of outputs, if known.

    Raises:
        TLToolsError: If the names are not unique non-empty strings, or their
            count differs from ``num_classes``.
    """
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TLToolsError(f"class names must be a list of strings; got {class_names!r}")
    names = list(class_names)
    if not all(isinstance(name, str) and name for name in names):
        raise TLToolsError(f"class names must be non-empty strings; got {names!r}")
    if len(set(names)) != len(names):
        raise TLToolsError(f"class names must be unique; got {names!r}")
    if num_classes is not None and len(names) != num_classes:
        raise TLToolsError(f"{len(names)} class names given for a model with {num_classes} outputs: {names!r}")
    return names


def save_model(model: keras.Model, path, class_names: Sequence[str], metadata: dict | None = None) -> Path:
    """Save ``model`` with its class names and metadata, atomically.

    Args:
        model: A Keras model ending in one probability per class.
        path: Target file ending in ``.keras`` (recommended) or ``.h5``.
        class_names: One name per model output, in output order.
        metadata: JSON-serialisable extras (e.g. training settings). The keys
            ``backbone``, ``input_size``, ``preprocessing`` and
            ``tltools_version`` are filled in when absent.

    Returns:
        The path written.

    Raises:
        TLToolsError: For an unsupported suffix, class names that do not fit
            the model, metadata that is not JSON-serialisable, or a model
            the legacy ``.h5`` format cannot hold.
    """
    path = Path(path)
    suffix = _suffix(path)
    names = check_class_names(class_names, model.output_shape[-1])
    info = json.dumps({"class_names": names, "metadata": {**_model_facts(model), **(metadata or {})}}, default=_refuse)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{suffix}")
    try:
        if suffix == ".keras":
            model.save(tmp)
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(INFO_MEMBER, info)
        else:
            _save_h5(model, tmp, info)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _save_h5(model: keras.Model, tmp: Path, info: str) -> None:
    """Write the legacy HDF5 format and check that Keras can read it back.

    Raises:
        TLToolsError: If the legacy format cannot represent the model (e.g.
            ConvNeXt's LayerScale or MobileNetV3's arithmetic layers).
    """
    model.save(tmp)
    try:
        keras.saving.load_model(tmp, safe_mode=True, compile=False)
    except (ValueError, TypeError, KeyError) as error:
        raise TLToolsError(
            f"{model.name} cannot be stored in the legacy .h5 format ({error}); save it as .keras instead"
        ) from None
    with h5py.File(tmp, "a") as file:
        file.attrs[INFO_ATTRIBUTE] = info


def load_model(path, limits: Limits | None = None) -> tuple[keras.Model, list[str], dict]:
    """Load a model saved by :func:`save_model`, or any Keras image classifier, from an untrusted file.

    Before Keras reads anything, the file is screened (see
    :mod:`tltools.model.screening`): its size, its members and every class
    it names. Keras then loads it with ``safe_mode=True``. A file without
    tltools data (a plain Keras model) still loads: its class names become
    ``class_0`` .. ``class_{n-1}`` and a ``UserWarning`` says so.

    Args:
        path: A ``.keras`` or ``.h5`` file, or a run folder holding ``model.keras``.
        limits: ``max_model_bytes`` bounds the file; defaults to
            :func:`tltools.limits.default_limits` (``TLTOOLS_MAX_MODEL_BYTES``).

    Returns:
        ``(model, class_names, metadata)``.

    Raises:
        TLToolsError: If the file is missing, too large, not a Keras model,
            names a Lambda layer, a custom class or anything else than Keras'
            own classes, cannot be loaded safely, is not a classifier of
            images, or its class names do not fit the model. Always one line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RUN_MODEL_FILE
    if not path.is_file():
        raise TLToolsError(
            f"model file not found: {path}; give a .keras/.h5 file or a run folder with {RUN_MODEL_FILE}"
        )
    suffix = _suffix(path)
    screen_model_file(path, limits or default_limits())
    info = _read_info(path, suffix)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - anything a damaged or hostile file makes Keras raise
        raise TLToolsError(
            f"could not load the model in {path}: {first_line(error)}; save it again with Keras {keras.__version__}"
        ) from None
    num_classes = _num_classes(model, path)
    if info is None:
        warnings.warn(
            f"{path} has no class names (it was not saved by tltools); using class_0..class_{num_classes - 1}",
            UserWarning,
            stacklevel=2,
        )
        return model, [f"class_{i}" for i in range(num_classes)], {}
    try:
        names = check_class_names(info["class_names"], num_classes)
        metadata = dict(info.get("metadata", {}))
    except (KeyError, TypeError, ValueError) as error:
        raise TLToolsError(f"the tltools data in {path} is damaged ({error!r}); save the model again") from None
    return model, names, metadata


def _suffix(path: Path) -> str:
    """Return the model format suffix, refusing any other."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TLToolsError(f"{path}: a model file must end in .keras or .h5; got {suffix or 'no suffix'!r}")
    return suffix


def _read_info(path: Path, suffix: str) -> dict | None:
    """Return the tltools JSON of a model file, None if it has none.

    Raises:
        TLToolsError: If the file is not a Keras model or the JSON is unreadable.
    """
    try:
        if suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                members = set(archive.namelist())
                if "config.json" not in members:
                    raise TLToolsError(f"{path} is a zip file but not a Keras model (no config.json)")
                raw = archive.read(INFO_MEMBER) if INFO_MEMBER in members else None
        else:
            with h5py.File(path, "r") as file:
                if "model_config" not in file.attrs:
                    raise TLToolsError(f"{path} is an HDF5 file but not a Keras model (no model_config)")
                raw = file.attrs.get(INFO_ATTRIBUTE)
    except (zipfile.BadZipFile, OSError) as error:
        raise TLToolsError(f"{path} is not a Keras model file ({error})") from None
    if raw is None:
        return None
    try:
        info = json.loads(raw)
    except (ValueError, TypeError, RecursionError) as error:
        raise TLToolsError(f"the tltools data in {path} is not valid JSON ({error}); save the model again") from None
    if not isinstance(info, dict):
        raise TLToolsError(f"the tltools data in {path} is damaged (not a JSON object); save the model again")
    return info


def _num_classes(model: keras.Model, path: Path) -> int:
    """Return the number of classes of an image classifier: one input ``(batch, h, w, 3)``, one output ``(batch, n)``.

    Raises:
        TLToolsError: The model has other inputs or outputs.
    """
    inputs, outputs = model.input_shape, model.output_shape
    image_input = isinstance(inputs, tuple) and len(inputs) == 4 and inputs[-1] == 3 and isinstance(inputs[1], int)
    if not (image_input and isinstance(outputs, tuple) and len(outputs) == 2 and isinstance(outputs[-1], int)):
        raise TLToolsError(
            f"{path} is not an image classifier tltools can use: input shape {inputs}, output shape {outputs}; "
            "expected one input (batch, height, width, 3) and one output (batch, classes)"
        )
    return outputs[-1]


def _model_facts(model: keras.Model) -> dict:
    """Return what the model itself says: its backbone, input size and preprocessing."""
    facts = {"tltools_version": __version__, "input_size": model.input_shape[1]}
    for spec in list_backbones():
        if spec.name == model.name:
            facts.update(backbone=spec.name, preprocessing=spec.preprocessing)
    return facts


def _refuse(value):
    """``json.dumps`` hook: name the value that cannot be saved."""
    raise TLToolsError(f"metadata value {value!r} of type {type(value).__name__} is not JSON-serialisable")
