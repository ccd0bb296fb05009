"""Classifying images with a trained model: the API the app and the CLI share.

>>> model, class_names, _ = load_model("runs/pets")
>>> predictions = predict_images(model, class_names, ["cat.jpg", uploaded_bytes], top_k=3)
>>> Path("predictions.csv").write_text(predictions_csv(predictions_table(predictions)))

Every image goes through :func:`tltools.data.images.load_image` at the model's
input size, exactly as during training, and the model normalises the pixels itself.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from PIL import Image

from tltools.data.images import load_image
from tltools.errors import TLToolsError


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """The classification of one image.

    Attributes:
        source: Display name: the path, an uploaded file's name, or ``image_<i>``
            (its position in the list) for bytes, PIL images and arrays.
        top: The most probable classes, most probable first:
            ``[{"index": int, "label": str, "prob": float}, ...]``.
        probabilities: One probability per class, in class order.
    """

    source: str
    top: list[dict]
    probabilities: np.ndarray


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """An image :func:`predict_images` could not read (with ``skip_unreadable=True``).

    Attributes:
        source: Display name, as :attr:`Prediction.source`.
        reason: Why it could not be read (the loader's one-line message).
    """

    source: str
    reason: str


def predict_images(
    model: keras.Model,
    class_names: Sequence[str],
    sources,
    *,
    top_k: int = 5,
    tta_flip: bool = False,
    batch_size: int = 32,
    skip_unreadable: bool = False,
) -> list[Prediction | Unreadable]:
    """Classify images, decoding each once and predicting them ``batch_size`` at a time.

    Args:
        model: A classifier taking raw RGB 0..255 (e.g. from ``load_model``).
        class_names: One name per model output.
        sources: One image, or an iterable (list, tuple, Series ...) of
            images; each a path, ``bytes``, a binary file object, a PIL image
            or an array (anything :func:`tltools.data.images.load_image` takes).
        top_k: Classes listed per image, at least 1; capped at the class count.
        tta_flip: Average the probabilities of each image and its horizontal mirror.
        batch_size: Images per forward pass.
        skip_unreadable: Report an image that cannot be read as an
            :class:`Unreadable` in its place and predict the others, instead of raising.

    Returns:
        One :class:`Prediction` (or :class:`Unreadable`) per source, in order.

    Raises:
        TLToolsError: An image cannot be read (unless ``skip_unreadable``), the model takes any input size,
            ``top_k`` or ``batch_size`` is below 1, or ``class_names`` does not
            fit the model's outputs.
    """
    sources = _as_list(sources)
    names = list(class_names)
    if len(names) != model.output_shape[-1]:
        raise TLToolsError(
            f"{len(names)} class names given for a model with {model.output_shape[-1]} outputs; "
            "pass the class names load_model returned with the model"
        )
    k = capped_top_k(top_k, len(names))
    check_batch_size(batch_size)
    size = input_size(model)
    results = []
    for start in range(0, len(sources), batch_size):  # decode a batch at a time: memory stays bounded
        decoded = []
        for index, source in enumerate(sources[start:start + batch_size], start):
            try:
                decoded.append((index, load_image(source, size)))
            except TLToolsError as error:
                if not skip_unreadable:
                    raise
                results.append((index, Unreadable(source=_source_name(source, index), reason=str(error))))
        if not decoded:
            continue
        probs = predict_probabilities(model, np.stack([image for _, image in decoded]), batch_size=batch_size,
                                      tta_flip=tta_flip)
        for (index, _), row in zip(decoded, probs):
            name = _source_name(sources[index], index)
            results.append((index, Prediction(source=name, top=top_classes(row, names, k), probabilities=row)))
    return [result for _, result in sorted(results, key=lambda pair: pair[0])]


def predict_probabilities(
    model: keras.Model, images: np.ndarray, *, batch_size: int = 32, tta_flip: bool = False
) -> np.ndarray:
    """Return the model's probabilities for decoded images, batch by batch.

    Args:
        model: A classifier taking raw RGB 0..255.
        images: ``uint8`` array (N, H, W, 3) at the model's input size.
        batch_size: Images per forward pass.
        tta_flip: Average each image's probabilities with its horizontal mirror's.

    Returns:
        ``float32`` array (N, number of classes).

    Raises:
        TLToolsError: If ``batch_size`` is below 1.
    """
    check_batch_size(batch_size)
    batches = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].astype(np.float32)
        probs = np.asarray(model.predict_on_batch(batch))
        if tta_flip:
            probs = (probs + np.asarray(model.predict_on_batch(batch[:, :, ::-1]))) / 2
        batches.append(probs.astype(np.float32))
    if not batches:
        return np.empty((0, model.output_shape[-1]), dtype=np.float32)
    return np.concatenate(batches)


def top_classes(probs: np.ndarray, class_names: Sequence[str], k: int) -> list[dict]:
    """Return the ``k`` most probable classes, most probable first (ties: lower index first).

    Returns:
        ``[{"index": int, "label": str, "prob": float}, ...]``.
    """
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"index": int(i), "label": class_names[i], "prob": float(probs[i])} for i in order]


def predictions_table(predictions: Sequence[Prediction]) -> pd.DataFrame:
    """Return predictions as a table, one row per image.

    Columns: ``image``, ``predicted``, ``confidence``, then for each rank r
    ``top<r>_label`` and ``top<r>_prob``. Save it with :func:`predictions_csv`.
    """
    rows = []
    for prediction in predictions:
        best = prediction.top[0]
        row = {"image": prediction.source, "predicted": best["label"], "confidence": best["prob"]}
        for rank, item in enumerate(prediction.top, start=1):
            row[f"top{rank}_label"] = item["label"]
            row[f"top{rank}_prob"] = item["prob"]
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["image", "predicted", "confidence"])


# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def predictions_csv(table: pd.DataFrame) -> str:
    """Return :func:`predictions_table`'s table as CSV text that is safe to open in a spreadsheet.

    Class names and file names come from uploads; a text cell starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``
    so that Excel or LibreOffice shows it as text instead of running it as a
    formula. Numbers are written unchanged.
    """
    def escape(value):
        return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value

    safe = table.copy()
    for name in safe.columns:
        if pd.api.types.is_string_dtype(safe[name]) or safe[name].dtype == object:
            safe[name] = safe[name].map(escape)
    return safe.to_csv(index=False)


def _as_list(sources) -> list:
    """Return ``sources`` as a list, a single image becoming a one-element list."""
    single = isinstance(sources, (str, Path, bytes, bytearray, np.ndarray, Image.Image)) or hasattr(sources, "read")
    return [sources] if single else list(sources)


def _source_name(source, index: int) -> str:
    """Return a display name for an image source: its path or file name, else ``image_<index>``."""
    if isinstance(source, (str, Path)):
        return str(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else f"image_{index}"


def input_size(model: keras.Model) -> int:
    """Return the side of the square images ``model`` takes.

    Raises:
        TLToolsError: If the model accepts any size (it was not built by tltools).
    """
    size = model.input_shape[1]
    if size is None:
        raise TLToolsError(f"model {model.name!r} accepts any input size; build it with a fixed input_size")
    return int(size)


def capped_top_k(top_k: int, num_classes: int) -> int:
    """Return ``top_k`` capped at ``num_classes``.

    Raises:
        TLToolsError: If ``top_k`` is not a whole number of at least 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise TLToolsError(f"top_k={top_k!r} must be a whole number of at least 1")
    return int(min(top_k, num_classes))


def check_batch_size(batch_size: int) -> None:
    """Raise :class:`TLToolsError` unless ``batch_size`` is a whole number of at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise TLToolsError(f"batch_size={batch_size!r} must be a whole number of at least 1")
