"""The download bundle: one zip with everything needed to use the model without tltools.

Members, at the zip's root: ``model.keras`` (written by
:func:`tltools.model.io.save_model`, so tltools also reads its class names),
``labels.txt``, ``preprocessing.json``, ``predict.py`` (plain keras + Pillow +
numpy, see :mod:`tltools.export.bundle_predict`) and ``README.md`` (the model
card, :mod:`tltools.export.model_card`).
"""

import importlib.resources
import json
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from tltools.backbones import list_backbones
from tltools.data.images import RESAMPLING
from tltools.export.archive import LABELS_FILE, labels_text
from tltools.export.model_card import model_card
from tltools.model.io import RUN_MODEL_FILE, load_model, save_model

MODEL_FILE = RUN_MODEL_FILE
PREPROCESSING_FILE = "preprocessing.json"
PREDICT_FILE = "predict.py"
README_FILE = "README.md"


def write_bundle(model: keras.Model, class_names: Sequence[str], path: Path, metadata: dict | None = None) -> None:
    """Write the bundle zip of ``model`` to ``path``.

    Args:
        model: The Keras model (raw RGB 0..255 in, probabilities out).
        class_names: One name per output, in output order.
        path: The zip file to write.
        metadata: Saved in ``model.keras`` and shown in the model card
            (see :func:`tltools.export.model_card.model_card`).

    Raises:
        TLToolsError: If the metadata is not JSON-serialisable.
    """
    metadata = {**_model_facts(model), **(metadata or {})}
    preprocessing = preprocessing_info(model.input_shape[1], metadata.get("preprocessing"))
    with tempfile.TemporaryDirectory(prefix="tltools-bundle-") as folder:
        model_file = save_model(model, Path(folder) / MODEL_FILE, class_names, metadata)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(README_FILE, model_card(class_names, preprocessing, metadata))
            archive.writestr(PREDICT_FILE, predict_script())
            archive.writestr(LABELS_FILE, labels_text(class_names))
            archive.writestr(PREPROCESSING_FILE, json.dumps(preprocessing, indent=2) + "\n")
            archive.write(model_file, MODEL_FILE)


def preprocessing_info(input_size: int, rule: str | None) -> dict:
    """Return ``preprocessing.json``: what pixels the model takes and where they are normalised.

    The resize filter is the one tltools trained with
    (:data:`tltools.data.images.RESAMPLING`); ``pillow_resample`` names it as
    a member of ``PIL.Image.Resampling`` for ``predict.py``.

    Args:
        input_size: The model's input height = width.
        rule: The backbone's preprocessing rule
            (:data:`tltools.backbones.preprocessing.RULES`), None if unknown.
    """
    return {
        "input_size": input_size,
        "color": "RGB",
        "input_range": [0, 255],
        "resize": f"{RESAMPLING.name.lower()}, no crop",
        "pillow_resample": RESAMPLING.name,
        "normalisation": f"inside the model ({rule or 'rule unknown: not a tltools model'})",
    }


def predict_script() -> str:
    """Return the text of the bundle's ``predict.py``."""
    return importlib.resources.files(__package__).joinpath("bundle_predict.py").read_text(encoding="utf-8")


def predict_bundle(path: Path, images: np.ndarray) -> np.ndarray:
    """Load the ``model.keras`` inside a bundle and classify ``images`` with it.

    Args:
        path: The bundle zip.
        images: ``uint8`` array (N, size, size, 3).

    Returns:
        Class probabilities, shape (N, classes).
    """
    with tempfile.TemporaryDirectory(prefix="tltools-bundle-") as folder:
        with zipfile.ZipFile(path) as archive:
            model_file = Path(archive.extract(MODEL_FILE, folder))
        model, _, _ = load_model(model_file)
    return model.predict(images.astype(np.float32), verbose=0)


def _model_facts(model: keras.Model) -> dict:
    """Return the backbone and preprocessing rule of a model built by tltools (named after its backbone)."""
    for spec in list_backbones():
        if spec.name == model.name:
            return {"backbone": spec.name, "preprocessing": spec.preprocessing}
    return {}
