"""TensorFlow SavedModel export: a zip of the SavedModel folder plus ``labels.txt``.

The zip holds the SavedModel files at its root (``saved_model.pb``,
``variables/``, ...) and ``labels.txt``. After ``unzip model.zip -d model``,
``tf.saved_model.load("model").serve(pixels)`` maps float32 RGB 0..255 of
shape (N, size, size, 3) to class probabilities; ``serving_default`` is the
same function for TF Serving. The SavedModel is also the input of the TFLite
converter (:mod:`tltools.export.tflite`).
"""

import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltools.export.archive import LABELS_FILE, labels_text, zip_folder


def write_saved_model(model: keras.Model, folder: Path) -> None:
    """Write ``model`` as a SavedModel into ``folder`` (Keras' ``model.export``).

    Args:
        model: The Keras model; its ``serve`` endpoint runs it in inference mode.
        folder: An empty or missing folder.
    """
    model.export(str(folder), format="tf_saved_model", verbose=False)


def write_saved_model_zip(model: keras.Model, class_names: Sequence[str], path: Path) -> None:
    """Write ``model`` as a zipped SavedModel with ``labels.txt`` to ``path``.

    Args:
        model: The Keras model.
        class_names: One name per output, in output order.
        path: The zip file to write.
    """
    with tempfile.TemporaryDirectory(prefix="tltools-savedmodel-") as folder:
        write_saved_model(model, Path(folder))
        (Path(folder) / LABELS_FILE).write_text(labels_text(class_names), encoding="utf-8")
        zip_folder(Path(folder), path)


def predict_saved_model_zip(path: Path, images: np.ndarray) -> np.ndarray:
    """Unzip a SavedModel written by :func:`write_saved_model_zip`, load it and classify ``images``.

    Args:
        path: The zip file.
        images: ``uint8`` array (N, size, size, 3).

    Returns:
        Class probabilities, shape (N, classes).
    """
    with tempfile.TemporaryDirectory(prefix="tltools-savedmodel-") as folder:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)
        loaded = tf.saved_model.load(folder)
        return loaded.serve(tf.constant(images, dtype=tf.float32)).numpy()
