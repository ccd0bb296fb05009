"""Where a backbone's starting weights come from: ImageNet, random, or the user's file.

``weights`` is ``"imagenet"``, ``"none"`` (or None) for random initialisation,
or the path of a weights file as ``base.save_weights(...)`` writes it
(``.weights.h5``; Keras 2's ``.h5`` files also load). ImageNet weights of the
Keras applications are downloaded by Keras on first use; without internet
access that fails, and :func:`imagenet_download_errors` turns the failure into
a :class:`TLToolsError` that names the offline alternatives.

A weights file may be an upload, so it is treated as untrusted: its size is
bounded (``TLTOOLS_MAX_MODEL_BYTES``), HDF5 links and storage that reach
other files are refused (:mod:`tltools.untrusted`), a whole model file is
refused (it is a recipe, not weights), and every array's shape is checked
against the backbone before any value is read.
"""

import collections
import contextlib
import os
import urllib.error
from pathlib import Path

import h5py
import keras

from tltools.errors import TLToolsError
from tltools.untrusted import check_model_size, check_self_contained, first_line

IMAGENET = "imagenet"
NONE = "none"
OFFLINE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def parse_weights(weights) -> str | Path | None:
    """Normalise a ``weights`` argument.

    Args:
        weights: ``"imagenet"``, ``"none"``, None, or a path to a weights file.

    Returns:
        ``"imagenet"``, None for random initialisation, or the file as a ``Path``.

    Raises:
        TLToolsError: If the path does not exist, is not an ``.h5`` file, or
            is larger than ``TLTOOLS_MAX_MODEL_BYTES``.
    """
    if weights is None or weights == NONE:
        return None
    if weights == IMAGENET:
        return IMAGENET
    if not isinstance(weights, (str, os.PathLike)):
        raise TLToolsError(f"weights={weights!r} is not supported; use 'imagenet', 'none' or a .weights.h5 path")
    path = Path(weights).expanduser()
    if not path.name.endswith(".h5"):
        raise TLToolsError(
            f"weights={str(weights)!r} is neither 'imagenet', 'none' nor a .weights.h5 / .h5 file "
            "as base.save_weights() writes"
        )
    if not path.is_file():
        raise TLToolsError(f"weights file not found: {path}; pass an existing .weights.h5 file, 'imagenet' or 'none'")
    check_model_size(f"weights file {path}", path.stat().st_size)
    return path


@contextlib.contextmanager
def imagenet_download_errors(backbone: str):
    """Turn a failed download of Keras' ImageNet weights into a TLToolsError.

    Args:
        backbone: Registry name of the backbone being built, for the message.

    Raises:
        TLToolsError: When the code inside fails to download a file.
    """
    try:
        yield
    except Exception as error:
        if not _is_download_failure(error):
            raise
        raise TLToolsError(
            f"could not download the ImageNet weights of {backbone}: no internet access ({error}). "
            f"Use one of the offline backbones {', '.join(OFFLINE_BACKBONES)}, pass weights= the path "
            "of a .weights.h5 file, or weights='none' for random initialisation"
        ) from error


def _is_download_failure(error: Exception) -> bool:
    """True for what ``keras.utils.get_file`` raises when it cannot fetch a URL."""
    if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return True
    return "URL fetch failure" in str(error)


def load_weights_file(model: keras.Model, path: Path, backbone: str) -> None:
    """Load a weights file into ``model`` after checking that every array fits.

    Args:
        model: The freshly built (randomly initialised) backbone.
        path: A ``.weights.h5`` (Keras 3) or ``.h5`` (Keras 2) weights file.
        backbone: Registry name of the backbone, for the message.

    Raises:
        TLToolsError: If the file is not HDF5, is a whole model, reaches
            outside itself (external links or storage), or its arrays do not
            have the shapes of ``model``'s weights (the message lists both).
    """
    expected = [(weight.path, tuple(weight.shape)) for weight in model.weights]
    found = _file_arrays(path)
    missing = _unmatched(expected, found)
    extra = _unmatched(found, expected)
    if missing or extra:
        raise TLToolsError(
            f"weights file {path} does not fit {backbone} ({len(expected)} arrays expected, {len(found)} found). "
            f"Expected but not in the file: {_describe(missing)}. In the file but not expected: "
            f"{_describe(extra)}. Use a file saved from the same backbone"
        )
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001 - anything a damaged file makes Keras or h5py raise
        raise TLToolsError(f"weights file {path} does not fit {backbone}: {first_line(error)}") from None


def _file_arrays(path: Path) -> list[tuple[str, tuple]]:
    """Return ``(name, shape)`` of every array stored in an HDF5 weights file.

    Raises:
        TLToolsError: The file is not readable HDF5, is a whole model, or reaches outside itself.
    """
    arrays = []

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            arrays.append((name, tuple(item.shape)))

    try:
        with h5py.File(path, "r") as file:
            if "model_config" in file.attrs:
                raise TLToolsError(
                    f"{path} is a whole Keras model (.h5 with a model configuration), not a weights file; save the "
                    "backbone's weights with base.save_weights('base.weights.h5') and use that file"
                )
            check_self_contained(file, f"weights file {path}")
            file.visititems(visit)
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise TLToolsError(
            f"weights file {path} is not an HDF5 file, or is damaged ({first_line(error, 160)}); "
            "use a .weights.h5 file saved with base.save_weights"
        ) from None
    return arrays


def _unmatched(arrays: list[tuple[str, tuple]], others: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
    """Return the arrays, in order, whose shape has no counterpart left in ``others``."""
    available = collections.Counter(shape for _, shape in others)
    unmatched = []
    for name, shape in arrays:
        if available[shape]:
            available[shape] -= 1
        else:
            unmatched.append((name, shape))
    return unmatched


def _describe(arrays: list[tuple[str, tuple]], limit: int = 4) -> str:
    """Render the first ``limit`` arrays, e.g. ``stem_conv/kernel (3, 3, 3, 32), ...``."""
    if not arrays:
        return "none"
    shown = ", ".join(f"{name} {shape}" for name, shape in arrays[:limit])
    return shown + (f", ... ({len(arrays) - limit} more)" if len(arrays) > limit else "")
