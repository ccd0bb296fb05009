"""``train``: the two-phase transfer-learning recipe, run into a run folder that is never lost.

Phase 1 trains the new head on the frozen base; phase 2 (when
``fine_tune_epochs`` > 0) unfreezes part of the base, recompiles with the lower
fine-tuning learning rate and continues the epoch count, as the Keras
transfer-learning guide and fastai's ``fine_tune`` do. BatchNorm stays in
inference mode throughout (the model calls its base with ``training=False``).
The best model by validation loss is checkpointed atomically after every
improvement; the run ends ``completed``, ``stopped`` or ``failed`` with the
reason, and a killed process leaves a run that reads back as ``interrupted``.
"""

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tltools import runs
from tltools.data.dataset import Dataset
from tltools.data.pipeline import decode_images, make_tf_dataset
from tltools.errors import TLToolsError
from tltools.evaluation.evaluate import evaluate_arrays
from tltools.model.builder import build_model
from tltools.model.freezing import apply_unfreeze, freeze_base
from tltools.model.io import load_model, save_model
from tltools.training.callbacks import BestModelCheckpoint, MetricsRecorder, StopRequest
from tltools.training.class_weights import IMBALANCE_WARNING_RATIO, balanced_class_weights, imbalance_ratio
from tltools.training.config import TrainConfig
from tltools.training.lr_finder import LRFinderResult, find_learning_rate
from tltools.training.optimizers import make_optimizer
from tltools.training.progress import TrainingLog


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        run: The run folder as read back after training.
        model: The trained model, holding the best weights.
        class_names: Class names in output order.
        metrics: The content of ``metrics.json``.
    """

    run: runs.RunInfo
    model: keras.Model
    class_names: list[str]
    metrics: dict


def train(
    config: TrainConfig,
    dataset: Dataset,
    *,
    log: TrainingLog | None = None,
    on_update=None,
    stop: StopRequest | None = None,
    from_run: Path | str | None = None,
    runs_root: Path | None = None,
    run_dir: Path | None = None,
) -> TrainResult:
    """Train a transfer model on ``dataset`` and write everything into a new run folder.

    Args:
        config: Every setting of the run.
        dataset: The data; it is re-split with the config's fractions and seed.
        log: Progress record that UIs read while training; a new one when None.
        on_update: Optional ``callable(log)`` after every batch and epoch (training thread).
        stop: A :class:`StopRequest` whose ``stop()`` ends training after the current batch.
        from_run: Continue from this run's model: same classes → keep training it;
            different classes → a new classifier on its base and hidden layers.
        runs_root: Folder for a new, uniquely named run folder; defaults to
            :func:`tltools.paths.runs_dir`.
        run_dir: Exact run folder to use instead (must not hold a run yet).

    Returns:
        The run, the trained model (best weights) and the metrics.

    Raises:
        TLToolsError: For unusable settings or data; the run folder then says ``failed``.
    """
    log = log or TrainingLog()
    stop = stop or StopRequest()
    if run_dir is not None:
        if (Path(run_dir) / "status.json").exists():
            raise TLToolsError(f"{run_dir} already holds a run; choose a new folder or use --from-run to continue it")
        writer = runs.RunWriter(run_dir)
    else:
        writer = runs.RunWriter.create(config.backbone, root=runs_root)
    writer.set_status(runs.RUNNING)
    try:
        result = _train(config, dataset, writer, log, on_update, stop, from_run)
    except BaseException as error:  # record why, whatever it was, then let it propagate
        writer.log(f"failed: {error}")
        writer.set_status(runs.FAILED, error=str(error) or type(error).__name__)
        raise
    return result


def _train(config, dataset, writer, log, on_update, stop, from_run) -> TrainResult:
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    dataset = dataset.with_splits(val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed)
    classes = dataset.classes
    if dataset.split("val").empty:
        raise TLToolsError("training needs validation images; set val_fraction above 0 or add a val/ folder")
    _write_run_inputs(writer, config, dataset)

    model = _initial_model(config, classes, from_run, writer)
    log.update(phase_name="decoding images")
    data = prepare_data(config, dataset, model.input_shape[1])
    class_weight = _class_weight(config, data.labels["train"], len(classes), writer, log)

    def save_best(current):
        save_model(current, writer.model_path, classes, metadata={"run_id": writer.path.name})

    checkpoint = BestModelCheckpoint(save_best, monitor="val_loss", mode="min")
    recorder = MetricsRecorder(log, on_update)
    total_epochs = config.epochs + config.fine_tune_epochs
    log.update(total_epochs=total_epochs)

    epochs_done = 0
    phases = [(1, "training the head (base frozen)", config.epochs, config.learning_rate)]
    if config.fine_tune_epochs:
        phases.append((2, f"fine-tuning (unfreeze {config.unfreeze})", config.fine_tune_epochs,
                       config.phase2_learning_rate))
    for phase, name, epochs, learning_rate in phases:
        if epochs == 0 or stop.requested:
            continue
        if phase == 1:
            freeze_base(model)
        else:
            apply_unfreeze(model, config.unfreeze, train_batchnorm=config.train_batchnorm)
        _compile(model, config, learning_rate)
        writer.log(f"phase {phase}: {name}, lr {learning_rate:g}, {epochs} epochs")
        log.update(phase=phase, phase_name=name)
        log.add_message(f"Phase {phase}: {name}, learning rate {learning_rate:g}")
        history = model.fit(
            data.train,
            validation_data=data.val,
            initial_epoch=epochs_done,
            epochs=epochs_done + epochs,
            class_weight=class_weight,
            shuffle=False,  # the pipeline reshuffles every epoch itself
            callbacks=[recorder, checkpoint, stop, *_standard_callbacks(config, writer)],
            verbose=0,
        )
        epochs_done += len(history.epoch)

    if checkpoint.saves == 0:  # no epoch finished with a finite val loss: keep what there is
        save_best(model)
    model, _, _ = load_model(writer.model_path)
    train_seconds = time.time() - started
    log.update(phase_name="evaluating")
    metrics = {
        "classes": classes,
        "val": _evaluate(model, classes, data, dataset, "val", config),
        "test": _evaluate(model, classes, data, dataset, "test", config),
        "epochs_run": epochs_done,
        "best_epoch": checkpoint.best_epoch,
        "best_val_loss": None if checkpoint.best_epoch is None else checkpoint.best,
        "train_seconds": round(train_seconds, 2),
        "stopped_by_user": stop.requested,
    }
    writer.write_json("metrics.json", metrics)
    status = runs.STOPPED if stop.requested else runs.COMPLETED
    writer.log(f"{status}: val accuracy {metrics['val']['accuracy']:.4f} after {epochs_done} epochs")
    writer.set_status(status)
    log.update(phase_name=status)
    return TrainResult(runs.read_run(writer.path), model, classes, metrics)


@dataclasses.dataclass
class PreparedData:
    """A dataset decoded once at the model's input size, with its training pipelines.

    Attributes:
        arrays: ``uint8`` images per split (``train``, ``val``, ``test``).
        labels: Integer labels per split.
        train: Shuffled (and augmented, if configured) batches with one-hot labels.
        val: Validation batches with one-hot labels.
    """

    arrays: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    train: tf.data.Dataset
    val: tf.data.Dataset


def prepare_data(config: TrainConfig, dataset: Dataset, image_size: int) -> PreparedData:
    """Decode every split once at ``image_size`` and build the training and validation pipelines."""
    arrays = {split: decode_images(dataset.paths(split), image_size) for split in ("train", "val", "test")}
    labels = {split: dataset.labels(split) for split in ("train", "val", "test")}
    num_classes = len(dataset.classes)
    train_data = make_tf_dataset(arrays["train"], labels["train"], batch_size=config.batch_size,
                                 shuffle=True, seed=config.seed, augment=config.augment)
    val_data = make_tf_dataset(arrays["val"], labels["val"], batch_size=config.batch_size)
    return PreparedData(arrays, labels, _one_hot(train_data, num_classes), _one_hot(val_data, num_classes))


def suggest_learning_rate(
    config: TrainConfig, dataset: Dataset, *, phase: int = 1, steps: int = 100,
    min_lr: float = 1e-7, max_lr: float = 1.0,
) -> LRFinderResult:
    """Run the learning-rate finder on the model ``config`` describes, frozen as in ``phase``.

    Args:
        config: The run's settings (model, batch size, optimizer, unfreeze for phase 2).
        dataset: The data; its training split feeds the sweep.
        phase: 1 sweeps with the base frozen; 2 with the base unfrozen per ``config.unfreeze``.
        steps: Most batches in the sweep.
        min_lr: First learning rate of the sweep.
        max_lr: Last learning rate of the sweep.

    Returns:
        The loss curve and the suggested learning rates.

    Raises:
        TLToolsError: For unusable settings or data.
    """
    keras.utils.set_random_seed(config.seed)
    dataset = dataset.with_splits(val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed)
    model = _initial_model(config, dataset.classes, None, None)
    if phase == 2:
        apply_unfreeze(model, config.unfreeze, train_batchnorm=config.train_batchnorm)
    data = prepare_data(config, dataset, model.input_shape[1])
    return find_learning_rate(
        model, data.train, loss=_loss(config), optimizer=config.optimizer, min_lr=min_lr, max_lr=max_lr, steps=steps
    )


def _evaluate(model, classes, data: PreparedData, dataset: Dataset, split: str, config: TrainConfig) -> dict | None:
    if not len(data.arrays[split]):
        return None
    return evaluate_arrays(model, classes, data.arrays[split], data.labels[split],
                           paths=list(dataset.split(split)["relpath"]), top_k=config.top_k)


def _write_run_inputs(writer: runs.RunWriter, config: TrainConfig, dataset: Dataset) -> None:
    """Record what the run trains on: settings, classes, dataset summary and the exact split."""
    writer.write_json("config.json", config.to_dict())
    writer.write_labels(dataset.classes)
    report = dataset.report()
    writer.write_json("dataset.json", {
        "source": report["source"], "root": str(dataset.root.resolve()), "layout": report["layout"],
        "fingerprint": dataset.fingerprint, "num_images": report["num_images"], "splits": report["splits"],
        "warnings": report["warnings"],
    })
    dataset.items[["relpath", "label", "split"]].to_csv(writer.path / "splits.csv", index=False)


def _initial_model(config: TrainConfig, classes: list[str], from_run, writer) -> keras.Model:
    """Build a new transfer model, or start from an earlier run's model."""
    if from_run is None:
        return build_model(config.backbone, classes, weights=config.weights, input_size=config.image_size,
                           pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout)
    previous, previous_classes, _ = load_model(from_run)
    if previous.name != config.backbone:
        raise TLToolsError(
            f"the run in {from_run} used backbone {previous.name!r}, not {config.backbone!r}; "
            f"set backbone={previous.name!r} to continue it"
        )
    if previous_classes == classes:
        writer.log(f"continuing the model of {from_run} on the same classes")
        return previous
    writer.log(f"new classifier for {len(classes)} classes on the base and hidden layers of {from_run}")
    model = build_model(config.backbone, classes, weights="none", input_size=previous.input_shape[1],
                        pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout)
    for layer in model.layers:
        if layer.name == "predictions" or not layer.weights:
            continue
        try:
            source = previous.get_layer(layer.name)
        except ValueError:
            continue
        if [w.shape for w in source.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(source.get_weights())
    return model


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float) -> None:
    model.compile(
        optimizer=make_optimizer(config.optimizer, learning_rate, momentum=config.momentum,
                                 weight_decay=config.weight_decay),
        loss=_loss(config),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def _loss(config: TrainConfig) -> keras.losses.Loss:
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def _one_hot(pipeline, num_classes: int):
    """One-hot labels, so that label smoothing works with the categorical cross-entropy."""
    return pipeline.map(lambda images, labels: (images, tf.one_hot(labels, num_classes)))


def _class_weight(config, train_labels: np.ndarray, num_classes: int, writer, log) -> dict | None:
    ratio = imbalance_ratio(train_labels, num_classes)
    if config.class_weights == "balanced":
        return balanced_class_weights(train_labels, num_classes)
    if ratio >= IMBALANCE_WARNING_RATIO:
        message = (f"classes are imbalanced ({ratio:.1f}x between the largest and smallest in train) "
                   "and class weights are off; consider class_weights='balanced'")
        writer.log(f"warning: {message}")
        log.add_message(f"Warning: {message}")
    return None


def _standard_callbacks(config: TrainConfig, writer: runs.RunWriter) -> list[keras.callbacks.Callback]:
    """Keras' own callbacks for one phase: CSV history, early stopping, LR on plateau, TensorBoard."""
    callbacks = [keras.callbacks.CSVLogger(str(writer.path / "history.csv"), append=True)]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True))
    if config.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=config.reduce_lr_factor, patience=config.reduce_lr_patience, min_lr=1e-7))
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(writer.path / "tensorboard")))
    return callbacks


def history_frame(run_path: Path | str) -> pd.DataFrame:
    """Return a run's per-epoch history (``history.csv``) as a DataFrame (empty before the first epoch)."""
    path = Path(run_path) / "history.csv"
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
