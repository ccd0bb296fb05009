"""Exporting a training run's model, or a model file, with images to calibrate and check it.

A run's exports live in its ``exports/`` folder, one file per format
(``<run id><ending>``, :data:`EXPORT_ENDINGS`) with a sidecar ``<file>.json``
holding the check numbers, the notes and the model file they were made from.
:func:`export_run` reuses an export while its model is unchanged, so the Runs
page and ``python -m tltools export`` build, keep and describe the same files.

A run's images come from its training split as its ``splits.csv`` lists it
(:func:`tltools.runs.read_split`); only files still there with their recorded
hash are used. A seeded sample of up to :data:`SAMPLE_SIZE` of them calibrates
int8 quantisation and the first :data:`CHECK_SIZE` check every export. When
none is left, int8 cannot be exported and the other formats are written
unchecked (the result's notes say so).
"""

import collections
import dataclasses
import shutil
from pathlib import Path

import numpy as np

from tltools import runs
from tltools.data.images import is_image_name
from tltools.data.pipeline import decode_images
from tltools.errors import TLToolsError
from tltools.export.formats import FORMATS, INT8, ExportResult, check_target, export_model
from tltools.fileio import atomic_path, format_bytes, read_json, write_json
from tltools.model.io import load_model
from tltools.runs import read_run

SAMPLE_SIZE = 100
CHECK_SIZE = 16
SAMPLE_SEED = 0
EXPORTS_FOLDER = "exports"
# Format → the end of its file name after the run id, in the run's exports folder.
EXPORT_ENDINGS = {
    "keras": ".keras",
    "h5": ".h5",
    "savedmodel": "_savedmodel.zip",
    "tflite": "_float32.tflite",
    "tflite-fp16": "_fp16.tflite",
    INT8: "_int8.tflite",
    "onnx": ".onnx",
    "bundle": "_bundle.zip",
}


def run_export_path(run: runs.RunInfo, fmt: str) -> Path:
    """Return where the run's export in ``fmt`` is kept: ``<run>/exports/<run id><ending>``.

    Raises:
        TLToolsError: ``fmt`` is not an export format.
    """
    if fmt not in EXPORT_ENDINGS:
        raise TLToolsError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    return check_target(fmt, run.path / EXPORTS_FOLDER / f"{run.run_id}{EXPORT_ENDINGS[fmt]}")


def sidecar_path(file: Path) -> Path:
    """Return where an export's check numbers and notes are kept: ``<file>.json`` beside it."""
    return Path(file).with_name(f"{Path(file).name}.json")


def cached_export(run: runs.RunInfo, fmt: str) -> ExportResult | None:
    """Return the run's kept export in ``fmt`` when it was made from the run's current model, else None."""
    file = run_export_path(run, fmt)
    sidecar = sidecar_path(file)
    if not (file.is_file() and sidecar.is_file() and run.model_path.is_file()):
        return None
    facts = read_json(sidecar)
    if facts.get("model") != _model_stamp(run.model_path):
        return None
    if fmt == "bundle" and facts.get("card") != _card_stamp(run):  # its model card shows latency, distillation
        return None
    return ExportResult(path=file, format=fmt, size_bytes=file.stat().st_size, check=facts.get("check"),
                        notes=tuple(facts.get("notes", ())))


def describe_export(result: ExportResult) -> list[str]:
    """Return the readable lines of one export that the CLI and the app show.

    Returns:
        ``"<format>, <size>"``, then the check numbers (when checked), then one ``note: …`` line per note.
    """
    lines = [f"{result.format}, {format_bytes(result.size_bytes)}"]
    if result.check is not None:
        check = result.check
        lines.append(f"check on {check['images']} images: max probability difference {check['max_prob_diff']:.3g}, "
                     f"top-1 agreement {check['top1_agreement']:.1%}")
    return lines + [f"note: {note}" for note in result.notes]


def export_run(run_path, fmt: str, out_path=None, *, images_dir=None) -> ExportResult:
    """Export a run's model, calibrated and checked on its training images, into its ``exports/`` folder.

    The export is built once per model: while the run's ``model.keras`` is
    unchanged, the kept file (:func:`cached_export`) is returned again.

    Args:
        run_path: A run folder, or a run id under the runs folder.
        fmt: An export format (:data:`tltools.export.FORMATS`).
        out_path: Also copy the export to this file (its suffix must be the
            format's); None to keep it only in the run's ``exports/`` folder.
        images_dir: A folder of representative images to use instead of the
            run's training split; the export is then built afresh.

    Returns:
        The :class:`ExportResult` of the file at ``out_path`` (or in the run
        folder); its notes say when the check was skipped.

    Raises:
        TLToolsError: For a missing run or model, a bad format or path, an
            int8 export whose training images are gone, or any error of
            :func:`tltools.export.export_model`.
    """
    run = read_run(run_path)
    kept = run_export_path(run, fmt)
    target = check_target(fmt, out_path) if out_path is not None else kept
    result = cached_export(run, fmt) if images_dir is None else None
    if result is None:
        paths, problem = (folder_images(images_dir), None) if images_dir is not None else training_images(run)
        if not paths and fmt == INT8:
            raise TLToolsError(
                f"tflite-int8 export needs the run's training images to calibrate the quantisation, but {problem}; "
                "restore them, or give a folder of representative images (--images DIR)"
            )
        stamp = _model_stamp(run.model_path) if run.model_path.is_file() else None
        model, class_names, metadata = load_model(run.path)
        metadata = {**metadata, "config": run.config, "metrics": run.metrics or {}, "dataset": dataset_summary(run),
                    **_card_facts(run)}
        result = _export(model, class_names, metadata, fmt, kept, paths, problem)
        write_json(sidecar_path(kept), {"format": fmt, "check": result.check, "notes": list(result.notes),
                                        "model": stamp, **({"card": _card_stamp(run)} if fmt == "bundle" else {})})
    if target != kept:
        with atomic_path(target) as temporary:
            shutil.copyfile(kept, temporary)
        result = dataclasses.replace(result, path=target)
    return result


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


def training_images(run: runs.RunInfo) -> tuple[list[Path], str | None]:
    """Return a seeded sample of the run's training images that are still there unchanged, or why there are none.

    Returns:
        ``(paths, None)`` with up to :data:`SAMPLE_SIZE` paths, or
        ``([], reason)`` when the run's split record or its images are missing.
    """
    try:
        rows, root = runs.read_split(run), runs.dataset_root(run)
    except TLToolsError as error:
        return [], str(error)
    rows = rows[rows["split"] == "train"]
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(rows))[:SAMPLE_SIZE]
    sample = rows.iloc[order]
    present = sample[runs.unchanged_images(root, sample)]
    if present.empty:
        return [], f"its {len(rows)} training images are gone from {root} or changed"
    return [root / relpath for relpath in present["relpath"]], None


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


def dataset_summary(run: runs.RunInfo) -> dict:
    """Return what the model card shows about a run's dataset: its name and images per split.

    The dataset's absolute root path is reduced to its folder name: bundles
    leave the machine, local paths should not.
    """
    dataset_file = run.path / runs.DATASET_FILE
    if not dataset_file.is_file():
        return {}
    summary = dict(read_json(dataset_file))
    summary.pop("split_settings", None)
    root = summary.pop("root", None)
    if root:
        summary = {"name": Path(root).name, **summary}
    try:
        summary["images per split"] = dict(collections.Counter(runs.read_split(run)["split"]))
    except TLToolsError:
        pass
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


def _card_facts(run: runs.RunInfo) -> dict:
    """What the model card shows besides the run's metrics: the kept latency table and the distillation report."""
    from tltools.distill.engine import DISTILL_FILE  # both import this module
    from tltools.export.latency import kept_latency

    facts = {}
    latency = kept_latency(run)
    if latency is not None:
        facts["latency"] = latency
    if (run.path / DISTILL_FILE).is_file():
        facts["distillation"] = read_json(run.path / DISTILL_FILE)
    return facts


def _card_stamp(run: runs.RunInfo) -> dict:
    """What identifies the versions of the files the model card reads besides the model (None: absent)."""
    from tltools.distill.engine import DISTILL_FILE  # both import this module
    from tltools.export.latency import LATENCY_FILE

    files = {"latency": run.path / EXPORTS_FOLDER / LATENCY_FILE, "distillation": run.path / DISTILL_FILE}
    return {name: (file.stat().st_mtime_ns if file.is_file() else None) for name, file in files.items()}


def _model_stamp(model_file: Path) -> dict:
    """Return what identifies one version of a model file: its modification time and size."""
    stat = Path(model_file).stat()
    return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def _sample(paths: list[Path]) -> list[Path]:
    """Return up to :data:`SAMPLE_SIZE` of ``paths`` in a seeded random order."""
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(paths))[:SAMPLE_SIZE]
    return [paths[i] for i in order]
