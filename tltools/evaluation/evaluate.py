"""Evaluating a trained model on one split of a dataset, or on images already decoded."""

from collections.abc import Sequence

import keras
import numpy as np

from tltools.data.dataset import Dataset
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.evaluation.metrics import classification_metrics
from tltools.prediction import capped_top_k, check_batch_size, input_size, predict_probabilities


def evaluate_split(
    model: keras.Model,
    class_names: Sequence[str],
    dataset: Dataset,
    split: str,
    *,
    batch_size: int = 32,
    top_k: int = 5,
) -> dict | None:
    """Predict every image of a split and return its metrics.

    Images are decoded once, at the model's input size, with the loader
    training used.

    Args:
        model: A classifier taking raw RGB 0..255 (e.g. from ``load_model``).
        class_names: The model's class names, in output order.
        dataset: The data; its classes must be ``class_names``, in the same order.
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: Images per forward pass.
        top_k: k of the top-k accuracy; capped at the class count.

    Returns:
        :func:`tltools.evaluation.metrics.classification_metrics` of the split,
        with image paths relative to the dataset root; None when the split is empty.

    Raises:
        TLToolsError: The classes don't match, ``split`` is unknown,
            ``top_k`` or ``batch_size`` is below 1, or an image cannot be decoded.
    """
    check_classes(class_names, dataset.classes)
    capped_top_k(top_k, len(class_names))
    check_batch_size(batch_size)
    rows = dataset.split(split)
    if rows.empty:
        return None
    images = decode_images(dataset.paths(split), input_size(model))
    return evaluate_arrays(
        model, class_names, images, dataset.labels(split),
        paths=list(rows["relpath"]), batch_size=batch_size, top_k=top_k,
    )


def evaluate_arrays(
    model: keras.Model,
    class_names: Sequence[str],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    paths: Sequence[str] | None = None,
    batch_size: int = 32,
    top_k: int = 5,
) -> dict | None:
    """Predict decoded images and return their metrics (training evaluates its arrays with this).

    Args:
        model: A classifier taking raw RGB 0..255.
        class_names: The model's class names, in output order.
        images: ``uint8`` array (N, size, size, 3) at the model's input size,
            e.g. from :func:`tltools.data.pipeline.decode_images`.
        labels: True class indices, length N.
        paths: Optional image names reported with the misclassified images.
        batch_size: Images per forward pass.
        top_k: k of the top-k accuracy; capped at the class count.

    Returns:
        :func:`tltools.evaluation.metrics.classification_metrics`, or None when there are no images.

    Raises:
        TLToolsError: If ``top_k`` or ``batch_size`` is below 1.
    """
    capped_top_k(top_k, len(class_names))
    if len(images) == 0:
        return None
    probs = predict_probabilities(model, images, batch_size=batch_size)
    return classification_metrics(labels, probs, list(class_names), top_k=top_k, paths=paths)


def check_classes(model_classes: Sequence[str], data_classes: Sequence[str]) -> None:
    """Check a model's class names equal a dataset's, in the same order.

    Raises:
        TLToolsError: Naming both lists, and whether only the order differs.
    """
    model_classes, data_classes = list(model_classes), list(data_classes)
    if model_classes == data_classes:
        return
    how = "same names in a different order" if sorted(model_classes) == sorted(data_classes) else "different names"
    raise TLToolsError(
        f"the model's classes don't match the data's ({how}): model {model_classes}, data {data_classes}; "
        "evaluate on data with exactly the classes the model was trained on"
    )
