"""Exporting a training run's model, or a model file, with images to calibrate and check it.

A run's images come from its training split: ``dataset.json`` gives the
dataset root and ``splits.csv`` (``relpath,label,split``) the files. A seeded
sample of up to :data:`SAMPLE_SIZE` of them calibrates int8 quantisation and
the first :data:`CHECK_SIZE` check every export. When they are gone, int8
cannot be exported and the other formats are written unchecked (the result's
notes say so).
"""

import collections
import csv
import dataclasses
from pathlib import Path

import numpy as np

from tltools.data.images import is_image_name
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.export.formats import INT8, ExportResult, check_target, export_model
from tltools.fileio import read_json
from tltools.model.io import load_model
from tltools.runs import read_run

SAMPLE_SIZE = 100
CHECK_SIZE = 16
SAMPLE_SEED = 0
DATASET_FILE = "dataset.json"
SPLITS_FILE = "splits.csv"


def export_run(run_path, fmt: str, out_path, *, images_dir=None) -> ExportResult:
    """Export a run's model, calibrated and checked on its training images.

    Args:
        run_path: A run folder, or a run id under the runs folder.
        fmt: An export format (:data:`tltools.export.FORMATS`).
        out_path: The file to write; its suffix must be the format's.
        images_dir: A folder of representative images to use instead of the
            run's training split.

    Returns:
        The :class:`ExportResult`; its notes say when the check was skipped.

    Raises:
        TLToolsError: For a missing run or model, a bad format or path, an
            int8 export whose training images are gone, or any error of
            :func:`tltools.export.export_model`.
    """
    out_path = check_target(fmt, out_path)
    run = read_run(run_path)
    paths, problem = (folder_images(images_dir), None) if images_dir is not None else training_images(run.path)
    if not paths and fmt == INT8:
        raise TLToolsError(
            f"tflite-int8 export needs the run's training images to calibrate the quantisation, but {problem}; "
            "restore them, or give a folder of representative images (--images DIR)"
        )
    model, class_names, metadata = load_model(run.path)
    metadata = {**metadata, "config": run.config, "metrics": run.metrics or {}, "dataset": dataset_summary(run.path)}
    return _export(model, class_names, metadata, fmt, out_path, paths, problem)


def export_file(model_path, fmt: str, out_path, *, images_dir=None) -> ExportResult:
    """Export a model file saved by tltools; int8 needs ``images_dir``.

    Args:
        model_path: A ``.keras`` or ``.h5`` file.
        fmt: An export format (:data:`tltools.export.FORMATS`).
        out_path: The file to write; its suffix must be the format's.
        images_dir: A folder of representative images (training images are
            best) that calibrate int8 and check every format; without it the
            export is not checked.

    Returns:
        The :class:`ExportResult`; its notes say when the check was skipped.

    Raises:
        TLToolsError: For an unreadable model, a bad format or path, int8
            without ``images_dir``, or any error of :func:`tltools.export.export_model`.
    """
    out_path = check_target(fmt, out_path)
    paths = folder_images(images_dir) if images_dir is not None else []
    if not paths and fmt == INT8:
        raise TLToolsError(
            f"tflite-int8 export of the model file {model_path} needs representative images to calibrate the "
            "quantisation; give a folder of training images (--images DIR), or export its run folder instead"
        )
    model, class_names, metadata = load_model(model_path)
    return _export(model, class_names, metadata, fmt, out_path, paths, "no images were given to check it on")


def training_images(run_folder: Path) -> tuple[list[Path], str | None]:
    """Return a seeded sample of a run's training images that still exist, or why there are none.

    Returns:
        ``(paths, None)`` with up to :data:`SAMPLE_SIZE` paths, or
        ``([], reason)`` when the run's split files or images are missing.
    """
    dataset_file, splits_file = run_folder / DATASET_FILE, run_folder / SPLITS_FILE
    if not dataset_file.is_file() or not splits_file.is_file():
        return [], f"the run folder {run_folder} lacks the {DATASET_FILE} and {SPLITS_FILE} that name them"
    root = read_json(dataset_file).get("root")
    if not root:
        return [], f"{dataset_file} does not say where the dataset is (no root)"
    root = Path(root)
    rows = _split_rows(splits_file)
    listed = [root / row["relpath"] for row in rows if row.get("split") == "train" and row.get("relpath")]
    present = [path for path in listed if path.is_file()]
    if not present:
        return [], f"its {len(listed)} training images are gone from {root}"
    return _sample(present), None


def folder_images(folder) -> list[Path]:
    """Return a seeded sample of up to :data:`SAMPLE_SIZE` image files found below ``folder``.

    Raises:
        TLToolsError: The folder is missing or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TLToolsError(f"image folder not found: {folder}; give a folder of representative images")
    found = sorted(path for path in folder.rglob("*") if path.is_file() and is_image_name(path.name))
    if not found:
        raise TLToolsError(f"no image files below {folder}; give a folder of representative (training) images")
    return _sample(found)


def dataset_summary(run_folder: Path) -> dict:
    """Return what the model card shows about a run's dataset: its name and images per split.

    The dataset's absolute root path is reduced to its folder name: bundles
    leave the machine, local paths should not.
    """
    dataset_file, splits_file = run_folder / DATASET_FILE, run_folder / SPLITS_FILE
    if not dataset_file.is_file():
        return {}
    summary = dict(read_json(dataset_file))
    root = summary.pop("root", None)
    if root:
        summary = {"name": Path(root).name, **summary}
    if splits_file.is_file():
        summary["images per split"] = dict(collections.Counter(row.get("split") for row in _split_rows(splits_file)))
    return summary


def _export(model, class_names, metadata, fmt, out_path, paths, problem) -> ExportResult:
    """Decode the images ``fmt`` needs from ``paths`` and export; note why the check is skipped without any."""
    size = model.input_shape[1]
    images = decode_images(paths[: SAMPLE_SIZE if fmt == INT8 else CHECK_SIZE], size) if paths else None
    result = export_model(
        model,
        class_names,
        fmt,
        out_path,
        metadata=metadata,
        representative_images=images if fmt == INT8 else None,
        check_images=images[:CHECK_SIZE] if images is not None else None,
    )
    if images is None:
        result = dataclasses.replace(result, notes=(*result.notes, f"not checked: {problem}"))
    return result


def _split_rows(splits_file: Path) -> list[dict]:
    with open(splits_file, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _sample(paths: list[Path]) -> list[Path]:
    """Return up to :data:`SAMPLE_SIZE` of ``paths`` in a seeded random order."""
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(paths))[:SAMPLE_SIZE]
    return [paths[i] for i in order]
