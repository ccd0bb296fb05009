"""Evaluation: one path from predictions to the metrics every caller reports.

:func:`split_metrics` turns a model's probabilities for a dataset's val and
test images into the ``{"classes", "val", "test"}`` metrics that training
writes to ``metrics.json``, the Evaluate page shows and the CLI prints.
:func:`evaluate_run` evaluates a run on its own recorded split (or on other
data); :func:`evaluate_dataset` evaluates any model on a dataset's splits.
"""

from collections.abc import Callable, Sequence

import keras
import numpy as np

from tltools import runs
from tltools.data.dataset import Dataset
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.evaluation.metrics import classification_metrics
from tltools.fileio import write_json
from tltools.prediction import capped_top_k, check_batch_size, input_size, predict_probabilities

EVALUATED_SPLITS = ("val", "test")
METRICS_FILE = "metrics.json"


def split_metrics(
    class_names: Sequence[str],
    dataset: Dataset,
    predict: Callable[[str], np.ndarray],
    *,
    splits: Sequence[str] = EVALUATED_SPLITS,
    top_k: int = 5,
) -> dict:
    """Return the metrics of a dataset's splits from a model's probabilities.

    Args:
        class_names: The model's class names, in output order (the dataset's classes).
        dataset: The data; its split column says which image is in which split.
        predict: ``predict(split)`` returns the probabilities of ``dataset``'s
            images of that split, in the dataset's order (N, number of classes).
        splits: The splits to evaluate; the others are reported as None.
        top_k: k of the top-k accuracy; capped at the class count.

    Returns:
        ``{"classes": [...], "val": metrics | None, "test": metrics | None}``
        (plus any other split asked for), each metrics entry being
        :func:`tltools.evaluation.metrics.classification_metrics` with image
        paths relative to the dataset root; None for a split not asked for or empty.

    Raises:
        TLToolsError: ``top_k`` is below 1 or a split name is unknown.
    """
    capped_top_k(top_k, len(class_names))
    result = {"classes": list(class_names)}
    for split in dict.fromkeys((*EVALUATED_SPLITS, *splits)):
        rows = dataset.split(split)
        if split not in splits or rows.empty:
            result[split] = None
            continue
        result[split] = classification_metrics(
            dataset.labels(split), predict(split), list(class_names), top_k=top_k, paths=list(rows["relpath"])
        )
    return result


def evaluate_dataset(
    model: keras.Model,
    class_names: Sequence[str],
    dataset: Dataset,
    *,
    splits: Sequence[str] = EVALUATED_SPLITS,
    batch_size: int = 32,
    top_k: int = 5,
) -> dict:
    """Predict the images of a dataset's splits and return :func:`split_metrics`.

    Images are decoded once, at the model's input size, with the loader training used.

    Args:
        model: A classifier taking raw RGB 0..255 (e.g. from ``load_model``).
        class_names: The model's class names, in output order.
        dataset: The data; its classes must be ``class_names``, in the same order.
        splits: The splits to evaluate (``train``, ``val``, ``test``).
        batch_size: Images per forward pass.
        top_k: k of the top-k accuracy; capped at the class count.

    Raises:
        TLToolsError: The classes don't match, a split is unknown, ``top_k`` or
            ``batch_size`` is below 1, or an image cannot be decoded.
    """
    check_classes(class_names, dataset.classes)
    check_batch_size(batch_size)
    size = input_size(model)

    def predict(split: str) -> np.ndarray:
        return predict_probabilities(model, decode_images(dataset.paths(split), size), batch_size=batch_size)

    return split_metrics(class_names, dataset, predict, splits=splits, top_k=top_k)


def evaluate_split(
    model: keras.Model,
    class_names: Sequence[str],
    dataset: Dataset,
    split: str,
    *,
    batch_size: int = 32,
    top_k: int = 5,
) -> dict | None:
    """Return the metrics of one split (:func:`evaluate_dataset` of that split), or None when it is empty.

    Raises:
        TLToolsError: As :func:`evaluate_dataset`.
    """
    return evaluate_dataset(model, class_names, dataset, splits=(split,), batch_size=batch_size, top_k=top_k)[split]


def evaluate_run(
    run,
    data=None,
    *,
    splits: Sequence[str] = EVALUATED_SPLITS,
    batch_size: int = 32,
    top_k: int | None = None,
    save: bool = False,
) -> dict:
    """Evaluate a run's best model on its own recorded split, or on other data.

    Args:
        run: A :class:`tltools.runs.RunInfo`, a run folder or a run id.
        data: None for the run's own split (``splits.csv``, checked by
            :func:`tltools.runs.load_run_dataset`); else a :class:`Dataset`, or a
            folder or ``.zip`` loaded with the run's split settings.
        splits: The splits to evaluate.
        batch_size: Images per forward pass.
        top_k: k of the top-k accuracy; None for the run's ``top_k`` setting (else 5).
        save: Also write the result into the run's ``metrics.json`` (keeping
            what training recorded there and counting the epochs in its history);
            only for the run's own split.

    Returns:
        :func:`split_metrics` of the run's model.

    Raises:
        TLToolsError: The run, its model or its data cannot be read; listed images
            are gone or changed; the classes don't match; ``save`` with ``data``.
    """
    from tltools.data import load_dataset
    from tltools.model import load_model
    from tltools.training import history_frame

    if save and data is not None:
        raise TLToolsError("only the run's own split is saved into its metrics.json; evaluate other data without save")
    run = run if isinstance(run, runs.RunInfo) else runs.read_run(run)
    model, class_names, _ = load_model(run.path)
    if data is None:
        dataset = runs.load_run_dataset(run)
    else:
        dataset = data if isinstance(data, Dataset) else load_dataset(data, **runs.split_settings(run))
    top_k = run.config.get("top_k", 5) if top_k is None else top_k
    result = evaluate_dataset(model, class_names, dataset, splits=splits, batch_size=batch_size, top_k=top_k)
    if save:
        write_json(run.path / METRICS_FILE,
                   {**(run.metrics or {}), **result, "epochs_run": len(history_frame(run.path))})
    return result


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
