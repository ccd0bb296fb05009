"""``distill``: a small student from a trained teacher run, trained by the one trainer into an ordinary run folder.

Distillation is an option of :func:`tltools.training.train` (``TrainConfig.teacher_run``,
``distill_temperature``, ``distill_alpha``, ``distill_unlabeled``; see
:mod:`tltools.distill.teacher`): the same phases, fast path, checkpoints, early
stopping, events and stop requests as any run, with the Hinton loss in place of
the plain cross-entropy and the teacher's logits cached like features. The
student's ``config.json`` names its teacher, and the run can be evaluated,
exported and continued like any other.

:func:`distill` adds what the comparison needs:

1. the student's :class:`~tltools.training.TrainConfig` from the teacher run (its batch size,
   split settings and seed; the teacher's split itself comes from its ``splits.csv``);
2. :func:`tltools.training.train` with that config on the teacher's images;
3. optionally (``compare=True``) the same student trained alone (the same config
   without the teacher, into ``<run>/comparison/student-alone/``), and the teacher,
   the distilled student and the student alone compared: test accuracy, parameters,
   ``.keras`` and TFLite int8 size, latency per image (:mod:`tltools.export.latency`).
   The comparison is ``distill.json`` in the run; its models lie in ``<run>/comparison/``.

:func:`tltools.distill.task.distill_task` runs the same as a job (:meth:`tltools.jobs.JobManager.submit`).
Nothing is written outside the new run folder and the feature cache.
"""

import dataclasses
from pathlib import Path

import numpy as np

from tltools import runs
from tltools.data.pipeline import decode_images
from tltools.distill.teacher import Teacher
from tltools.errors import TLToolsError
from tltools.export.formats import INT8, export_model
from tltools.export.latency import REPEATS, keras_runner, time_call
from tltools.export.run import export_run, training_images
from tltools.model.io import load_model
from tltools.training import StopRequest, TrainingLog, train
from tltools.training.config import TrainConfig

DEFAULT_STUDENT = "efficientnet_lite0"
DEFAULT_IMAGE_SIZE = 160
DISTILL_FILE = "distill.json"
COMPARISON_FOLDER = "comparison"
ALONE_FOLDER = "student-alone"


@dataclasses.dataclass
class DistillResult:
    """What :func:`distill` produced.

    Attributes:
        run: The student's run folder, read back.
        metrics: Its ``metrics.json`` (``distillation`` names the teacher).
        report: Its ``distill.json``: teacher, settings and (when compared) the comparison rows.
    """

    run: runs.RunInfo
    metrics: dict
    report: dict


def student_config(
    teacher_run,
    *,
    student: str = DEFAULT_STUDENT,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    temperature: float | None = None,
    alpha: float | None = None,
    epochs: int = 10,
    learning_rate: float | None = None,
    fine_tune_epochs: int = 0,
    unfreeze: str = "all",
    unlabeled=None,
) -> TrainConfig:
    """Return the student's training settings for distilling ``teacher_run``.

    The teacher's batch size, split settings and seed are kept (so the split drawn from them is the
    teacher's; the trainer uses the teacher's ``splits.csv`` itself); early stopping and
    reduce-LR are off (``epochs`` are run, the best epoch by validation cross-entropy kept).

    Args:
        teacher_run: A completed run folder or run id (the teacher).
        student: The student's backbone (any registry backbone).
        image_size: The student's input size; None for the backbone's own.
        temperature: T of the softened probabilities (``TrainConfig.distill_temperature``; None: its default).
        alpha: Weight of the true labels; the rest goes to the teacher's soft targets
            (``TrainConfig.distill_alpha``; None: its default).
        epochs: Epochs of the student's head on its frozen base.
        learning_rate: Phase-1 learning rate (None: ``TrainConfig``'s default).
        fine_tune_epochs: Epochs with ``unfreeze`` of the student's base unfrozen, distilled too.
        unfreeze: What fine-tuning unfreezes (as ``train``'s ``--unfreeze``).
        unlabeled: A folder of unlabelled images the teacher labels for the student; None for none.

    Raises:
        TLToolsError: No run at ``teacher_run``, or a setting out of range (one line naming it).
    """
    teacher = runs.read_run(teacher_run)
    given = teacher.config or {}
    # Unset settings take TrainConfig's defaults; TrainConfig checks every range (one line naming the field).
    chosen = {name: value for name, value in (("distill_temperature", temperature), ("distill_alpha", alpha),
                                              ("learning_rate", learning_rate)) if value is not None}
    return TrainConfig(
        backbone=student, image_size=image_size, epochs=epochs, **chosen,
        fine_tune_epochs=fine_tune_epochs, unfreeze=unfreeze, batch_size=given.get("batch_size", 32),
        **runs.split_settings(teacher), early_stopping_patience=0, reduce_lr_patience=0,
        teacher_run=str(teacher.path.resolve()),
        distill_unlabeled=None if unlabeled is None else str(Path(unlabeled).resolve()),
    )


def distill(
    teacher_run,
    *,
    student: str = DEFAULT_STUDENT,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    temperature: float | None = None,
    alpha: float | None = None,
    epochs: int = 10,
    learning_rate: float | None = None,
    fine_tune_epochs: int = 0,
    unfreeze: str = "all",
    unlabeled=None,
    compare: bool = True,
    latency_repeats: int = REPEATS,
    runs_root: Path | None = None,
    run_dir: Path | None = None,
    on_message=None,
    log: TrainingLog | None = None,
    stop: StopRequest | None = None,
) -> DistillResult:
    """Distil ``teacher_run``'s model into a ``student`` backbone; write an ordinary run folder.

    Args:
        teacher_run, student, image_size, temperature, alpha, epochs, learning_rate,
            fine_tune_epochs, unfreeze, unlabeled: As :func:`student_config` takes them.
        compare: Also train the student alone and write the comparison (int8 exports, latency).
        latency_repeats: Timed calls per latency figure.
        runs_root: Where the new run folder is made (default: the runs folder).
        run_dir: The exact new run folder instead.
        on_message: Optional ``callable(line)`` for progress lines.
        log: Live progress (the app's job log); a new one when None.
        stop: A stop request: ends training after the current batch, the comparison is then skipped.

    Returns:
        The :class:`DistillResult`.

    Raises:
        TLToolsError: A teacher run that does not exist or has no model, bad settings
            (one line naming the value), a student backbone whose weights cannot be had
            offline, an unlabelled folder without images; the run folder then says ``failed``
            when it had been created.
    """
    config = student_config(teacher_run, student=student, image_size=image_size, temperature=temperature,
                            alpha=alpha, epochs=epochs, learning_rate=learning_rate,
                            fine_tune_epochs=fine_tune_epochs, unfreeze=unfreeze, unlabeled=unlabeled)
    teacher = Teacher.load(config)  # the one-line errors (no model, no unlabelled images) before any image is read
    dataset = teacher.dataset_for(None)
    if run_dir is None:
        run_dir = runs.RunWriter.create(f"{student}-distilled", root=runs_root).path
    return run_distillation(config, dataset, run_dir=Path(run_dir), compare=compare, latency_repeats=latency_repeats,
                            log=log, stop=stop, on_message=on_message)


def run_distillation(config: TrainConfig, dataset, *, run_dir: Path, compare: bool = True,
                     latency_repeats: int = REPEATS, log: TrainingLog | None = None, stop: StopRequest | None = None,
                     on_message=None) -> DistillResult:
    """Train the student ``config`` describes (``teacher_run`` set) into ``run_dir``, then compare.

    Args:
        config: The student's settings (:func:`student_config`, or any config naming a teacher).
        dataset: The teacher's images (the trainer keeps only the teacher's split of them).
        run_dir: The new run folder.
        compare: Also train the student alone and write the comparison.
        latency_repeats: Timed calls per latency figure.
        log: Live progress; a new one when None.
        stop: Stop request; a stopped student gets no comparison.
        on_message: Optional ``callable(line)`` for progress lines.

    Returns:
        The :class:`DistillResult`.

    Raises:
        TLToolsError: What :func:`tltools.training.train` raises; ``config`` without a teacher.
    """
    if not config.teacher_run:
        raise TLToolsError("this config names no teacher run; set teacher_run to distil")
    say = on_message or (lambda _line: None)
    log = log or TrainingLog()
    stop = stop or StopRequest()
    say(f"training the student {config.backbone} from teacher run {Path(config.teacher_run).name}")
    log.update(phase_name="reading the images and the teacher's logits")
    result = train(config, dataset, log=log, stop=stop, run_dir=run_dir)
    settings = result.metrics["distillation"]
    teacher_hit = settings["teacher_logits_cache"] == "hit"
    say(f"teacher logits: {'cached' if teacher_hit else 'computed once'} for {len(dataset.items)} images")
    report = {"settings": {**settings, "student": config.backbone, "image_size": int(result.model.input_shape[1])}}
    writer = runs.RunWriter(result.run.path)
    if compare and not stop.requested:
        say("training the same student without the teacher, for the comparison")
        log.update(phase_name="comparison: training the student alone")
        alone_config = config.replace(teacher_run=None, distill_unlabeled=None)
        alone = train(alone_config, dataset, stop=stop, run_dir=result.run.path / COMPARISON_FOLDER / ALONE_FOLDER)
        if not stop.requested:
            log.update(phase_name="comparison: int8 exports and latency")
            report["comparison"] = _comparison(result.run, alone.run, latency_repeats, say)
            report["student_alone"] = {split: _brief(alone.metrics.get(split)) for split in ("val", "test")}
    if settings["unlabeled_images"]:
        report["unlabeled"] = {"images": settings["unlabeled_images"]}
    writer.write_json(DISTILL_FILE, report)
    writer.log("distillation report written" + (" with the comparison" if "comparison" in report else ""))
    log.update(phase_name=result.run.status)
    return DistillResult(runs.read_run(result.run.path), result.metrics, report)


def _brief(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {"accuracy": metrics["accuracy"], "loss": metrics.get("loss"), "images": metrics.get("num_images")}


def _comparison(student: runs.RunInfo, alone: runs.RunInfo, repeats: int, say) -> list[dict]:
    """Rows for teacher, distilled student and student alone: test accuracy, parameters, sizes, latency.

    The student's and the student alone's int8 files are their runs' own exports; the teacher's is
    written into the student's ``comparison/`` folder (the teacher's run is never written to).
    """
    teacher = runs.read_run(student.config["teacher_run"])
    folder = student.path / COMPARISON_FOLDER
    folder.mkdir(exist_ok=True)
    paths, _ = training_images(student)

    def row(name, run, int8_file=None):
        say(f"comparison: {name}: int8 export and latency")
        model, classes, _ = load_model(run.path)
        pixels = decode_images(paths, int(model.input_shape[1])) if paths else None
        if int8_file is None:
            int8 = export_run(run.path, INT8)
        else:
            int8 = export_model(model, classes, INT8, int8_file, representative_images=pixels,
                                check_images=None if pixels is None else pixels[:16])
        image = pixels[0] if pixels is not None else np.zeros((model.input_shape[1],) * 2 + (3,), np.uint8)
        keras_ms, _ = time_call(keras_runner(model), image, repeats)
        from tltools.export.latency import _runner

        call, runtime, _threads = _runner(INT8, int8.path, None)
        int8_ms, _ = time_call(call, image, repeats)
        return {"model": name, "backbone": model.name, "image_size": int(model.input_shape[1]),
                "test_accuracy": ((run.metrics or {}).get("test") or {}).get("accuracy"),
                "parameters": int(model.count_params()), "keras_bytes": run.model_path.stat().st_size,
                "int8_bytes": int8.size_bytes, "int8_top1_agreement": (int8.check or {}).get("top1_agreement"),
                "keras_ms": keras_ms, "int8_ms": int8_ms, "int8_runtime": runtime}

    return [row("teacher", teacher, folder / "teacher_int8.tflite"), row("distilled student", student),
            row("student alone", alone)]


def comparison_table(report: dict):
    """Return ``distill.json``'s comparison rows as a readable pandas DataFrame (sizes in MiB/KiB), or None without any."""
    import pandas as pd

    from tltools.fileio import format_bytes

    rows = report.get("comparison")
    if not rows:
        return None
    return pd.DataFrame([{
        "model": row["model"], "backbone": row["backbone"], "input px": row["image_size"],
        "test accuracy": None if row["test_accuracy"] is None else round(row["test_accuracy"], 4),
        "parameters": f"{row['parameters']:,}",
        ".keras size": format_bytes(row["keras_bytes"]), "TFLite int8 size": format_bytes(row["int8_bytes"]),
        "Keras ms/image": round(row["keras_ms"], 2), "int8 ms/image": round(row["int8_ms"], 2),
    } for row in rows])
