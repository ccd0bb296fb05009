"""``distill``: train a small student from a trained teacher run, into an ordinary run folder.

Steps (every one reuses what training does):

1. The teacher run's images, split exactly as its ``splits.csv`` says
   (:func:`tltools.runs.load_run_dataset`); the student trains, validates and
   is tested on the same images.
2. The teacher's logits for every image are computed once and kept in the
   feature cache (:mod:`tltools.training.feature_cache`, keyed by the images,
   the teacher's weight values and its input size), so a second distillation
   from the same teacher computes nothing.
3. The student's frozen-base activations come from the trainer's fast path
   (:class:`tltools.training.fast_path.FastPaths`): distillation epochs cost
   what head epochs cost, and fine-tuning trains on the cached cut the same way
   (or on images when nothing can be cached).
4. The student is trained with the Hinton loss (:mod:`tltools.distill.loss`),
   best epoch by validation cross-entropy on the true labels, and evaluated
   by :func:`tltools.evaluation.split_metrics` like every run.
5. Optionally (``compare=True``) the same student is trained alone (``alpha=1``,
   same seed and epochs) and the teacher, the distilled student and the
   student alone are compared: accuracy, parameters, ``.keras`` and TFLite int8
   size, latency per image (:mod:`tltools.export.latency`). The comparison is
   ``distill.json`` in the run and its models lie in ``<run>/comparison/``.

Nothing is written outside the new run folder and the feature cache.
"""

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tltools import runs
from tltools.data.images import is_image_name
from tltools.data.pipeline import decode_images
from tltools.data.split import SPLITS
from tltools.distill.loss import DistillationLoss, hard_metrics, targets
from tltools.errors import TLToolsError
from tltools.evaluation.evaluate import split_metrics
from tltools.export.formats import INT8, export_model
from tltools.export.latency import REPEATS, keras_runner, time_call
from tltools.export.run import export_run, training_images
from tltools.model.builder import build_model
from tltools.model.freezing import apply_unfreeze, freeze_base
from tltools.model.io import load_model, save_model
from tltools.prediction import predict_probabilities
from tltools.training import feature_cache
from tltools.training.callbacks import HistoryCSV
from tltools.training.config import TrainConfig
from tltools.training.fast_path import FastPaths
from tltools.training.optimizers import make_optimizer
from tltools.training.split_model import SplitModel
from tltools.training.trainer import _write_run_inputs, prepare_data

DEFAULT_STUDENT = "efficientnet_lite0"
DEFAULT_IMAGE_SIZE = 160
DISTILL_FILE = "distill.json"
COMPARISON_FOLDER = "comparison"
TEACHER_CUT = "teacher-logits"


@dataclasses.dataclass
class DistillResult:
    """What :func:`distill` produced.

    Attributes:
        run: The student's run folder, read back.
        metrics: Its ``metrics.json``.
        report: Its ``distill.json``: teacher, settings and (when compared) the comparison rows.
    """

    run: runs.RunInfo
    metrics: dict
    report: dict


def distill(
    teacher_run,
    *,
    student: str = DEFAULT_STUDENT,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    temperature: float = 4.0,
    alpha: float = 0.5,
    epochs: int = 10,
    learning_rate: float = 1e-3,
    fine_tune_epochs: int = 0,
    unfreeze: str = "all",
    seed: int | None = None,
    unlabeled=None,
    compare: bool = True,
    latency_repeats: int = REPEATS,
    runs_root: Path | None = None,
    run_dir: Path | None = None,
    on_message=None,
) -> DistillResult:
    """Distil ``teacher_run``'s model into a ``student`` backbone; write an ordinary run folder.

    Args:
        teacher_run: A completed run folder or run id (the teacher).
        student: The student's backbone (any registry backbone).
        image_size: The student's input size; None for the backbone's own.
        temperature: T ≥ 1 of the softened probabilities.
        alpha: Weight of the true labels in [0, 1]; the rest goes to the teacher's soft targets.
        epochs: Epochs of the student's head on its frozen base.
        learning_rate: Phase-1 learning rate (fine-tuning uses a tenth).
        fine_tune_epochs: Epochs with ``unfreeze`` of the student's base unfrozen, distilled too.
        unfreeze: What fine-tuning unfreezes (as ``train``'s ``--unfreeze``).
        seed: The student's seed; None: the teacher's.
        unlabeled: A folder of unlabelled images the teacher labels for the student
            (soft targets only); None for none.
        compare: Also train the student alone and write the comparison (int8 exports, latency).
        latency_repeats: Timed calls per latency figure.
        runs_root: Where the new run folder is made (default: the runs folder).
        run_dir: The exact new run folder instead.
        on_message: Optional ``callable(line)`` for progress lines.

    Returns:
        The :class:`DistillResult`.

    Raises:
        TLToolsError: A teacher run that does not exist or has no model, bad settings
            (one line naming the value), a student backbone whose weights cannot be had
            offline, an unlabelled folder without images; the run folder then says ``failed``
            when it had been created.
    """
    say = on_message or (lambda _line: None)
    teacher = runs.read_run(teacher_run)
    if not teacher.model_path.is_file():
        raise TLToolsError(f"teacher run {teacher.run_id} has no model.keras; train it first")
    if not 1.0 <= float(temperature) <= 100.0:
        raise TLToolsError(f"temperature={temperature} is out of range; use a number from 1 to 100 (e.g. 4)")
    if not 0.0 <= float(alpha) <= 1.0:
        raise TLToolsError(f"alpha={alpha} is out of range; use a number from 0 (teacher only) to 1 (labels only)")
    unlabeled_paths = _unlabeled_images(unlabeled) if unlabeled is not None else []
    teacher_config = teacher.config
    config = TrainConfig(
        backbone=student, image_size=image_size, epochs=epochs, learning_rate=learning_rate,
        fine_tune_epochs=fine_tune_epochs, unfreeze=unfreeze,
        batch_size=teacher_config.get("batch_size", 32),
        seed=teacher_config.get("seed", 42) if seed is None else seed,
        val_fraction=teacher_config.get("val_fraction", 0.2), test_fraction=teacher_config.get("test_fraction", 0.2),
        early_stopping_patience=0,
    )
    teacher_model, classes, _ = load_model(teacher.path)
    dataset = runs.load_run_dataset(teacher)
    if list(dataset.classes) != list(classes):
        raise TLToolsError(f"teacher run {teacher.run_id}'s model classes differ from its data's; retrain the teacher")
    student_model = _build_student(config, classes)  # before the run folder: unavailable weights leave nothing
    writer = runs.RunWriter(run_dir) if run_dir is not None else runs.RunWriter.create(
        f"{student}-distilled", root=runs_root)
    writer.set_status(runs.RUNNING)
    try:
        return _distill(teacher, teacher_model, classes, dataset, config, student_model, writer, temperature, alpha,
                        unlabeled_paths, compare, latency_repeats, say)
    except BaseException as error:
        writer.log(f"failed: {error}")
        writer.set_status(runs.FAILED, error=str(error) or type(error).__name__)
        raise


def _distill(teacher, teacher_model, classes, dataset, config, student_model, writer, temperature, alpha,
             unlabeled_paths, compare, latency_repeats, say) -> DistillResult:
    started = time.time()
    _write_run_inputs(writer, config, dataset)
    settings = {"teacher": teacher.run_id, "teacher_path": str(teacher.path.resolve()),
                "teacher_backbone": teacher_model.name, "teacher_image_size": int(teacher_model.input_shape[1]),
                "student": config.backbone, "image_size": int(student_model.input_shape[1]),
                "temperature": float(temperature), "alpha": float(alpha), "unlabeled_images": len(unlabeled_paths)}
    writer.write_json(DISTILL_FILE, {"settings": settings})
    writer.log(f"distilling teacher run {teacher.run_id} ({teacher_model.name}) into {config.backbone} at "
               f"{settings['image_size']} px, T={temperature:g}, alpha={alpha:g}")
    size = int(student_model.input_shape[1])
    data = prepare_data(config, dataset, size)
    fast = FastPaths.plan(student_model, config, dataset, lambda: data.arrays, writer=writer)
    say(f"student features: {'cached' if fast.phase(1) and fast.phase(1).hit else 'computed'}")
    teacher_logits, hit = _teacher_logits(teacher_model, teacher.run_id, config, dataset)
    say(f"teacher logits: {'cached' if hit else 'computed once'} for {len(teacher_logits)} images")
    writer.log(f"teacher logits {'found in the feature cache' if hit else 'computed and cached'}")
    rows = _rows(dataset)
    extra = _Unlabeled(unlabeled_paths, teacher_model, size) if unlabeled_paths else None

    fitted = _fit_student(student_model, config, data, fast, rows, teacher_logits, dataset, temperature, alpha,
                          extra, writer.path / "history.csv")
    save_model(student_model, writer.model_path, classes,
               metadata={"run_id": writer.path.name, "teacher": teacher.run_id})
    metrics = {**split_metrics(classes, dataset, fitted.predict, top_k=config.top_k),
               "epochs_run": fitted.epochs, "best_epoch": fitted.best_epoch, "best_val_loss": fitted.best_loss,
               "train_seconds": round(time.time() - started, 2), "stopped_by_user": False, **fast.report(),
               "distillation": settings}
    writer.write_json("metrics.json", metrics)
    report = {"settings": settings}
    if compare:
        say("training the same student without the teacher, for the comparison")
        alone_model = _build_student(config, classes)
        alone = _fit_student(alone_model, config, data, fast, rows, teacher_logits, dataset, temperature, 1.0,
                             None, None)
        alone_metrics = split_metrics(classes, dataset, alone.predict, top_k=config.top_k)
        report["comparison"] = _comparison(teacher, teacher_model, writer.path, classes, student_model, metrics,
                                           alone_model, alone_metrics, latency_repeats, say)
        report["student_alone"] = {"val": _brief(alone_metrics["val"]), "test": _brief(alone_metrics["test"])}
    if extra is not None:
        report["unlabeled"] = {"images": len(unlabeled_paths),
                               "teacher_label_counts": extra.label_counts(classes)}
    writer.write_json(DISTILL_FILE, report)
    writer.log(f"completed: val accuracy {metrics['val']['accuracy']:.4f}"
               + (f", test accuracy {metrics['test']['accuracy']:.4f}" if metrics.get("test") else ""))
    writer.set_status(runs.COMPLETED)
    return DistillResult(runs.read_run(writer.path), metrics, report)


def _build_student(config: TrainConfig, classes) -> keras.Model:
    return build_model(config.backbone, classes, weights=config.weights, input_size=config.image_size,
                       pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout,
                       seed=config.seed)


def _unlabeled_images(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise TLToolsError(f"unlabelled image folder not found: {folder}; give a folder of images")
    found = sorted(path for path in folder.rglob("*") if path.is_file() and is_image_name(path.name)
                   and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    if not found:
        raise TLToolsError(f"no image files below {folder}; give a folder of unlabelled images (JPEG, PNG, …)")
    return found


def teacher_logits_model(teacher: keras.Model) -> keras.Model:
    """Return pixels → the teacher's logits (its ``predictions`` layer without the softmax).

    Raises:
        TLToolsError: The teacher has no ``predictions`` layer (not a tltools model).
    """
    try:
        predictions = teacher.get_layer("predictions")
    except ValueError:
        raise TLToolsError(f"the teacher model {teacher.name} has no 'predictions' layer; "
                           "use a run trained by tltools as the teacher") from None
    logits = keras.layers.Dense(predictions.units, name="teacher_logits")
    output = logits(predictions.input)
    logits.set_weights(predictions.get_weights())
    return keras.Model(teacher.input, output, name=f"{teacher.name}_logits")


def _teacher_logits(teacher_model, teacher_id, config, dataset) -> tuple[np.ndarray, bool]:
    """The teacher's logits for every image in cache order, from the feature cache or computed once into it."""
    extractor = teacher_logits_model(teacher_model)
    size = int(teacher_model.input_shape[1])
    split = SplitModel(cut=TEACHER_CUT, extractor=extractor, head=None, feature_shape=(int(extractor.output_shape[-1]),))
    table = feature_cache.image_table(dataset)
    key = feature_cache.feature_key(dataset, split, backbone=teacher_model.name, weights=f"run:{teacher_id}",
                                    image_size=size, table=table)
    found = feature_cache.load_features(key)
    if found is not None:
        return np.asarray(found), True
    arrays = prepare_data(config, dataset, size).arrays
    position = dict(zip(table["relpath"], table["row"]))
    sources = [(arrays[name], [position[path] for path in dataset.split(name)["relpath"]])
               for name in SPLITS if len(dataset.split(name))]
    feature_cache.extract_features(extractor, [key], sources, batch_size=config.batch_size)
    found = feature_cache.load_features(key)
    if found is None:
        raise TLToolsError(f"the feature cache in {feature_cache.features_dir()} could not be read back; check the disk")
    return np.asarray(found), False


def _rows(dataset) -> dict[str, np.ndarray]:
    table = feature_cache.image_table(dataset)
    position = dict(zip(table["relpath"], table["row"]))
    return {name: np.array([position[path] for path in dataset.split(name)["relpath"]], dtype=np.int64)
            for name in SPLITS}


class _Unlabeled:
    """Unlabelled images: decoded at the student's size, with the teacher's logits."""

    def __init__(self, paths, teacher_model, size):
        self.pixels = decode_images(paths, size)
        teacher_pixels = decode_images(paths, int(teacher_model.input_shape[1]))
        self.logits = np.asarray(teacher_logits_model(teacher_model).predict(teacher_pixels.astype(np.float32),
                                                                             batch_size=32, verbose=0))

    def inputs(self, extractor) -> np.ndarray:
        """The inputs of the trained part: pixels, or the frozen part's activations when ``extractor`` is given."""
        if extractor is None:
            return self.pixels.astype(np.float32)
        return np.asarray(extractor.predict(self.pixels.astype(np.float32), batch_size=32, verbose=0))

    def label_counts(self, classes) -> dict:
        counts = np.bincount(self.logits.argmax(axis=1), minlength=len(classes))
        return {name: int(count) for name, count in zip(classes, counts)}


@dataclasses.dataclass
class _Fitted:
    predict: object
    epochs: int
    best_epoch: int | None
    best_loss: float | None


class _KeepBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the lowest validation cross-entropy (on the true labels)."""

    def __init__(self, offset: int):
        super().__init__()
        self.best, self.best_epoch, self.weights, self.offset = math.inf, None, None, offset

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_crossentropy")
        if value is not None and np.isfinite(value) and value < self.best:
            self.best, self.best_epoch, self.weights = float(value), epoch + 1, self.model.get_weights()


def _fit_student(model, config, data, fast, rows, teacher_logits, dataset, temperature, alpha, extra,
                 history_path) -> _Fitted:
    """Train the student's phases with the distillation loss; return its predictor and the best epoch."""
    classes = len(dataset.classes)
    labels = {name: dataset.labels(name) for name in SPLITS}
    loss = DistillationLoss(classes, temperature, alpha)
    phases = [(1, config.epochs, config.learning_rate)]
    if config.fine_tune_epochs:
        phases.append((2, config.fine_tune_epochs, config.phase2_learning_rate))
    done, best_epoch, best_loss, last, best_weights = 0, None, None, None, None
    for phase, epochs, learning_rate in phases:
        if not epochs:
            continue
        if phase == 1:
            freeze_base(model)
        else:
            apply_unfreeze(model, config.unfreeze, train_batchnorm=config.train_batchnorm)
        cached = fast.phase(phase)
        trained = cached.model if cached else model

        def inputs(split, cached=cached):
            if cached is not None:
                return np.asarray(cached.features[cached.rows[split]], dtype=np.float32)
            return np.asarray(data.arrays[split], dtype=np.float32)

        x_train, y_train = inputs("train"), targets(labels["train"], teacher_logits[rows["train"]], classes)
        if extra is not None:
            x_train = np.concatenate([x_train, extra.inputs(cached.split.extractor if cached else None)])
            y_train = np.concatenate([y_train, targets(np.zeros(len(extra.logits), np.int64), extra.logits, classes,
                                                       labelled=np.zeros(len(extra.logits)))])
        y_val = targets(labels["val"], teacher_logits[rows["val"]], classes)
        train_data = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
                      .shuffle(len(x_train), seed=config.seed, reshuffle_each_iteration=True)
                      .batch(config.batch_size))
        val_data = tf.data.Dataset.from_tensor_slices((inputs("val"), y_val)).batch(config.batch_size)
        trained.compile(optimizer=make_optimizer(config.optimizer, learning_rate, momentum=config.momentum,
                                                 weight_decay=config.weight_decay),
                        loss=loss, metrics=hard_metrics(classes))
        keep = _KeepBest(done)
        callbacks = [keep] + ([HistoryCSV(str(history_path), append=True)] if history_path is not None else [])
        history = trained.fit(train_data, validation_data=val_data, initial_epoch=done, epochs=done + epochs, shuffle=False,
                              callbacks=callbacks, verbose=0)
        done += len(history.epoch)
        if keep.weights is not None and (best_loss is None or keep.best < best_loss):
            trained.set_weights(keep.weights)
            best_epoch, best_loss, best_weights = keep.best_epoch, keep.best, model.get_weights()
        elif best_weights is not None:
            model.set_weights(best_weights)  # this phase did not beat the best epoch so far: back to it
        last = cached
    freeze_base(model)

    def predict(split):
        if last is not None:
            return last.predict(split)
        return predict_probabilities(model, data.arrays[split])

    return _Fitted(predict, done, best_epoch, best_loss)


def _brief(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {"accuracy": metrics["accuracy"], "loss": metrics.get("loss"), "images": metrics.get("num_images")}


def _comparison(teacher, teacher_model, run_path, classes, student_model, metrics, alone_model, alone_metrics,
                repeats, say) -> list[dict]:
    """Rows for teacher, distilled student and student alone: accuracy, parameters, sizes, latency."""
    folder = run_path / COMPARISON_FOLDER
    folder.mkdir(exist_ok=True)
    alone_file = folder / "student_alone.keras"
    save_model(alone_model, alone_file, classes, metadata={"trained": "without the teacher"})
    paths, _ = training_images(runs.read_run(run_path))

    def row(name, model, model_file, test, int8_file):
        say(f"comparison: {name}: int8 export and latency")
        pixels = decode_images(paths, int(model.input_shape[1])) if paths else None
        if int8_file is None:
            int8 = export_run(run_path, INT8)
        else:
            int8 = export_model(model, classes, INT8, int8_file, representative_images=pixels,
                                check_images=pixels[:16])
        image = pixels[0] if pixels is not None else np.zeros((model.input_shape[1],) * 2 + (3,), np.uint8)
        keras_ms, _ = time_call(keras_runner(model), image, repeats)
        from tltools.export.latency import _runner

        call, runtime, threads = _runner(INT8, int8.path, None)
        int8_ms, _ = time_call(call, image, repeats)
        return {"model": name, "backbone": model.name, "image_size": int(model.input_shape[1]),
                "test_accuracy": (test or {}).get("accuracy"), "parameters": int(model.count_params()),
                "keras_bytes": Path(model_file).stat().st_size, "int8_bytes": int8.size_bytes,
                "int8_top1_agreement": (int8.check or {}).get("top1_agreement"),
                "keras_ms": keras_ms, "int8_ms": int8_ms, "int8_runtime": runtime}

    return [
        row("teacher", teacher_model, teacher.model_path, (teacher.metrics or {}).get("test"),
            folder / "teacher_int8.tflite"),
        row("distilled student", student_model, run_path / runs.MODEL_FILE, metrics.get("test"), None),
        row("student alone", alone_model, alone_file, alone_metrics.get("test"), folder / "student_alone_int8.tflite"),
    ]


def comparison_table(report: dict):
    """Return ``distill.json``'s comparison rows as a readable pandas DataFrame (sizes in MiB/KiB), or None without any."""
    import pandas as pd

    from tltools.fileio import format_bytes

    rows = report.get("comparison")
    if not rows:
        return None
    return pd.DataFrame([{
        "model": row["model"], "backbone": row["backbone"], "input px": row["image_size"],
        "test accuracy": row["test_accuracy"], "parameters": row["parameters"],
        ".keras size": format_bytes(row["keras_bytes"]), "TFLite int8 size": format_bytes(row["int8_bytes"]),
        "Keras ms/image": row["keras_ms"], "int8 ms/image": row["int8_ms"],
    } for row in rows])
