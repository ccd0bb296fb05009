"""``train``: the two-phase transfer-learning recipe, run into a run folder that is never lost.

Phase 1 trains the new head on the frozen base; phase 2 (when
``fine_tune_epochs`` > 0) unfreezes part of the base, recompiles with the lower
fine-tuning learning rate and continues the epoch count, as the Keras
transfer-learning guide and fastai's ``fine_tune`` do. Phase 2 starts from the
best phase-1 epoch's weights, whether early stopping is on or not. BatchNorm
stays in inference mode throughout (the model calls its base with ``training=False``).
The best model by validation loss (the unsmoothed cross-entropy, which
``metrics.json`` reports too: :mod:`tltools.training.callbacks.named_logs`;
label smoothing only changes what the optimizer minimises) is checkpointed atomically after every
improvement (at most every :data:`CHECKPOINT_INTERVAL` seconds, and always when
a phase ends); the run ends ``completed``, ``stopped`` or ``failed`` with the
reason, and a killed process leaves a run that reads back as ``interrupted``.

Without augmentation, a phase trains on cached activations of the frozen
layers instead of on images (:mod:`tltools.training.fast_path`): the base runs
once per dataset and model, not once per epoch. Images are decoded at most once
per run, and not at all when every phase finds its activations cached.
"""

import contextlib
import dataclasses
import functools
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tltools import fileio, runs
from tltools.data.dataset import Dataset
from tltools.data.pipeline import decode_images, decode_memory_budget, make_tf_dataset
from tltools.data.split import SPLITS
from tltools.distributed import loop as distributed_loop
from tltools.errors import TLToolsError
from tltools.evaluation.evaluate import split_metrics
from tltools.model.builder import build_model
from tltools.model.freezing import apply_unfreeze, freeze_base
from tltools.model.io import load_model, save_model
from tltools.prediction import predict_probabilities
from tltools.training.callbacks import MONITOR, HistoryCSV, MetricsRecorder, StopRequest, ThrottledCheckpoint
from tltools.training.class_weights import IMBALANCE_WARNING_RATIO, balanced_class_weights, imbalance_ratio
from tltools.training.config import EARLY_STOPPING_MIN_DELTA, TrainConfig
from tltools.training.discriminative import CosineDecay, block_rate_scales, gradual_stages, make_layer_rate_optimizer
from tltools.training.fast_path import CachedPhase, FastPaths
from tltools.training.feature_cache import image_list_digest
from tltools.training.lr_finder import LRFinderResult, find_learning_rate
from tltools.training.optimizers import make_optimizer
from tltools.training.progress import TrainingLog

# Least seconds between two checkpoint writes: writing a model takes about a second, an epoch
# on cached features a fraction of that (slower epochs are still written at every improvement).
CHECKPOINT_INTERVAL = 10.0

_logger = logging.getLogger(__name__)


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
    from tltools import distributed  # imports this module: lazily

    teacher = _teacher(config)  # before the run folder: a bad teacher leaves nothing behind
    several = distributed.wanted(config)  # several workers or GPUs (refuses what they cannot run)
    if several and teacher is not None:
        raise TLToolsError(f"distillation (teacher_run) trains in one process, not on workers={config.workers}; "
                           "set workers to 1")
    if run_dir is not None:
        if (Path(run_dir) / "status.json").exists():
            raise TLToolsError(f"{run_dir} already holds a run; choose a new folder or use --from-run to continue it")
        writer = runs.RunWriter(run_dir)
    else:
        writer = runs.RunWriter.create(config.backbone, root=runs_root)
    if several:  # tf.distribute through the custom loop: tltools.distributed runs it and reads the run back
        return distributed.train(config, dataset, writer, log=log, on_update=on_update, stop=stop, from_run=from_run)
    return run_into(writer, config, dataset, log, on_update, stop, from_run, teacher)


def run_into(writer: runs.RunWriter, config: TrainConfig, dataset: Dataset, log: TrainingLog, on_update,
             stop: StopRequest, from_run=None, teacher=None, *, strategy=None, execution=None) -> TrainResult:
    """Train into ``writer``'s folder, marking it ``running`` and, whatever goes wrong, ``failed`` with the reason.

    :func:`train` calls it; so does each worker of a distributed run (:mod:`tltools.distributed`), with
    its ``strategy`` and the ``execution`` facts for ``metrics.json`` (see :func:`_train`).

    Raises:
        TLToolsError: For unusable settings or data, or a full disk.
    """
    writer.set_status(runs.RUNNING)
    try:
        result = _train(config, dataset, writer, log, on_update, stop, from_run, teacher, strategy=strategy,
                        execution=execution)
    except BaseException as error:  # record why, whatever it was, then let it propagate
        reason = _failure_reason(error, writer)
        _record_failure(writer, reason)
        if fileio.is_disk_error(error):
            raise TLToolsError(reason) from error
        raise
    return result


def _failure_reason(error: BaseException, writer: runs.RunWriter) -> str:
    """One line for ``status.json``: the error's own message, or for a refused write what happened and what to do."""
    if not fileio.is_disk_error(error):
        return str(error) or type(error).__name__
    run_folder = os.path.abspath(writer.path)
    named = os.path.abspath(error.filename) if isinstance(error.filename, (str, os.PathLike)) else None
    outside = named is not None and os.path.commonpath([named, run_folder]) != run_folder
    reason = fileio.disk_error_message(error, named if outside else f"the run folder {writer.path}")
    if writer.model_path.is_file():
        reason += f"; the last checkpoint, {writer.model_path}, is kept"
    return reason


def _record_failure(writer: runs.RunWriter, reason: str) -> None:
    """Write ``failed`` and the reason; on a full disk the log line may not fit, the status still gets its try."""
    try:
        writer.log(f"failed: {reason}")
    except OSError:
        pass
    try:
        writer.set_status(runs.FAILED, error=reason)
    except OSError as error:
        _logger.error("could not record that run %s failed (%s): %s", writer.path, error, reason)


def _teacher(config: TrainConfig):
    """The :class:`tltools.distill.teacher.Teacher` that ``config.teacher_run`` names, or None without one."""
    if not config.teacher_run:
        return None
    from tltools.distill.teacher import Teacher  # distillation imports the trainer's package

    return Teacher.load(config)


def _train(config, dataset, writer, log, on_update, stop, from_run, teacher=None, *, strategy=None,
           execution=None) -> TrainResult:
    """The run itself; with ``strategy`` (a ``tf.distribute`` strategy) the model is built under its scope and
    every phase trains through :func:`tltools.distributed.loop.fit`. ``execution`` is what ``metrics.json``
    records about where it ran (``workers``, ``executor``, …)."""
    started = time.time()
    # The split is the config's (one function draws it); a student's is its teacher's: no teacher image is a test one.
    dataset = teacher.dataset_for(dataset) if teacher else dataset.with_splits(config)
    classes = dataset.classes
    if dataset.split("val").empty:
        raise TLToolsError("training needs validation images; set val_fraction above 0 or add a val/ folder")
    _write_run_inputs(writer, config, dataset)

    with _scope(strategy):
        model = _initial_model(config, classes, from_run, writer)
    if strategy is not None:
        distributed_loop.detach_from_strategy(model)
    data = prepare_data(config, dataset, model.input_shape[1],  # decodes on first use, once
                        on_progress=lambda done, total: log.update(phase_name=f"decoding images ({done}/{total})"),
                        on_warning=lambda message: _warn(writer, log, message))
    fast = FastPaths.plan(model, config, dataset, lambda: data.arrays, release_images=data.release, writer=writer,
                          log=log)
    if not fast.needs_images:
        data.release()  # every phase trains on cached activations from here on
    class_weight = _class_weight(config, data.labels["train"], len(classes), writer, log)
    if teacher is not None:
        _prepare_teacher(teacher, dataset, model, config, writer, log)
    metadata = {"run_id": writer.path.name, **({"teacher": teacher.run.run_id} if teacher else {})}

    def save_best(_fitted):  # always the full model, whichever part of it is being fit
        save_model(model, writer.model_path, classes, metadata=metadata)

    checkpoint = ThrottledCheckpoint(save_best, monitor=MONITOR, mode="min", min_interval=CHECKPOINT_INTERVAL)
    recorder = MetricsRecorder(log, on_update)
    total_epochs = config.epochs + config.fine_tune_epochs
    log.update(total_epochs=total_epochs)

    epochs_done, trained = 0, model
    last_cached = fast.phase(1) or fast.phase(2)  # valid for evaluation until a phase on images runs
    phases = [(1, "training the head (base frozen)", config.epochs, config.learning_rate)]
    if config.fine_tune_epochs:
        phases.append((2, f"fine-tuning (unfreeze {config.unfreeze})", config.fine_tune_epochs,
                       config.phase2_learning_rate))
    for phase, name, epochs, learning_rate in phases:
        if epochs == 0 or stop.requested:
            continue
        gradual = phase == 2 and config.gradual_unfreeze
        # Phase 2 with gradual unfreezing: one block more each stage, deeper blocks at lower rates (discriminative).
        stages = gradual_stages(model, config.unfreeze, epochs) if gradual else [(config.unfreeze, epochs)]
        decay = CosineDecay(learning_rate, epochs_done, epochs) if gradual else None
        cached = fast.phase(phase)  # cut below the phase's whole unfreeze setting: every stage trains on it
        for unfreeze, stage_epochs in stages:
            if stop.requested:
                break
            if phase == 1:
                freeze_base(model)
            else:
                apply_unfreeze(model, unfreeze, train_batchnorm=config.train_batchnorm)
            trained = cached.model if cached else model
            rate = decay.rate(epochs_done) if decay else learning_rate
            with _scope(strategy):
                _compile(trained, config, rate, rate_scales=block_rate_scales(model) if gradual else None,
                         teacher=teacher)
            stage = f" (unfreeze {unfreeze}, deeper blocks at lower rates)" if gradual else ""
            writer.log(f"phase {phase}: {name}{stage}, lr {rate:g}, {stage_epochs} epochs"
                       + (f", on cached features ({cached.split.cut})" if cached else ""))
            train_data, val_data = _phase_data(cached, data, len(classes), config, teacher, class_weight)
            log.update(phase=phase, phase_name=name)  # after decoding, which reports its own progress as the phase
            log.add_message(f"Phase {phase}: {name}{stage}, learning rate {rate:g}")
            callbacks = _standard_callbacks(config, writer, reduce_lr=not gradual)
            fit = trained.fit if strategy is None else functools.partial(distributed_loop.fit, trained, strategy)
            history = fit(
                train_data,
                validation_data=val_data,
                initial_epoch=epochs_done,
                epochs=epochs_done + stage_epochs,
                class_weight=None if teacher else class_weight,  # a teacher's batches carry them
                shuffle=False,  # the pipeline reshuffles every epoch itself
                callbacks=[recorder, checkpoint, stop, *callbacks, *([decay] if decay else [])],
                verbose=0,
            )
            epochs_done += len(history.epoch)
            last_cached = cached
            # Whatever early stopping did: the next stage or phase starts from the best epoch so far when it was
            # this one's.
            checkpoint.restore_best(trained)

    if checkpoint.saves == 0:  # no epoch finished with a finite val loss: keep what there is
        save_best(model)
    elif not (checkpoint.restore_best(trained) or checkpoint.restore_best(model)):
        # The best epoch was in phase 1's head, and phase 2 has changed the base since: read it back.
        model.set_weights(load_model(writer.model_path)[0].get_weights())
    train_seconds = time.time() - started
    log.update(phase_name="evaluating")
    metrics = {
        **_evaluate(model, classes, data, dataset, config, last_cached),
        "epochs_run": epochs_done,
        "best_epoch": checkpoint.best_epoch,
        "best_val_loss": None if checkpoint.best_epoch is None else checkpoint.best,
        "train_seconds": round(train_seconds, 2),
        "stopped_by_user": stop.requested,
        **fast.report(),
        **(execution or {"workers": 1, "executor": "local"}),
        **({"distillation": teacher.summary()} if teacher else {}),
    }
    writer.write_json("metrics.json", metrics)
    status = runs.STOPPED if stop.requested else runs.COMPLETED
    writer.log(f"{status}: val accuracy {metrics['val']['accuracy']:.4f} after {epochs_done} epochs")
    writer.set_status(status)
    log.update(phase_name=status)
    return TrainResult(runs.read_run(writer.path), model, classes, metrics)


class PreparedData:
    """A dataset's splits decoded once, on first use, at the model's input size, with their pipelines.

    Attributes:
        labels: Integer labels per split (``train``, ``val``, ``test``).
        arrays: ``uint8`` images per split, decoded on first access (in memory, or
            :class:`tltools.data.array_store.NpyRows` past the decode memory budget).
        train: Shuffled (and augmented, if configured) batches with one-hot labels.
        val: Validation batches with one-hot labels.
    """

    def __init__(self, config: TrainConfig, dataset: Dataset, image_size: int, on_progress=None, on_warning=None):
        self._config, self._dataset, self._size = config, dataset, image_size
        self._on_progress, self._on_warning = on_progress, on_warning
        self.labels = {split: dataset.labels(split) for split in SPLITS}

    @functools.cached_property
    def arrays(self) -> dict:
        budget, done, total = decode_memory_budget(), 0, len(self._dataset.items)
        arrays = {}
        for split in SPLITS:
            rows = self._dataset.split(split)
            progress = None if self._on_progress is None else (
                lambda count, _, offset=done: self._on_progress(offset + count, total))
            arrays[split] = decode_images(self._dataset.paths(split), self._size, memory_budget=budget,
                                          cache_key=image_list_digest(rows)[:32], on_progress=progress,
                                          on_warning=self._on_warning)
            if isinstance(arrays[split], np.ndarray):  # held in memory: the next splits get what is left
                budget = max(budget - arrays[split].nbytes, 0)
            done += len(rows)
        return arrays

    @functools.cached_property
    def train(self) -> tf.data.Dataset:
        pipeline = make_tf_dataset(self.arrays["train"], self.labels["train"], batch_size=self._config.batch_size,
                                   shuffle=True, seed=self._config.seed, augment=self._config.augment)
        return _one_hot(pipeline, len(self._dataset.classes))

    @functools.cached_property
    def val(self) -> tf.data.Dataset:
        pipeline = make_tf_dataset(self.arrays["val"], self.labels["val"], batch_size=self._config.batch_size)
        return _one_hot(pipeline, len(self._dataset.classes))

    def release(self) -> None:
        """Drop the decoded images and their pipelines (they are decoded again if asked for)."""
        for name in ("arrays", "train", "val"):
            self.__dict__.pop(name, None)


def prepare_data(config: TrainConfig, dataset: Dataset, image_size: int, *, on_progress=None,
                 on_warning=None) -> PreparedData:
    """Return ``dataset``'s splits at ``image_size``, decoded once when first needed, with their pipelines.

    ``on_progress(done, total)`` is called as images are decoded, ``on_warning(message)``
    when the decoded-image disk cache could not be written and memory is used instead.
    """
    return PreparedData(config, dataset, image_size, on_progress=on_progress, on_warning=on_warning)


def suggest_learning_rate(
    config: TrainConfig, dataset: Dataset, *, phase: int = 1, steps: int = 100,
    min_lr: float = 1e-7, max_lr: float = 1.0,
) -> LRFinderResult:
    """Run the learning-rate finder on the model ``config`` describes, frozen as in ``phase``.

    Without augmentation the sweep trains on cached activations of the frozen
    layers (see :mod:`tltools.training.fast_path`), like training does.

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
    dataset = dataset.with_splits(config)  # the split is the config's: one function draws it
    model = _initial_model(config, dataset.classes, None, None)
    data = prepare_data(config, dataset, model.input_shape[1])
    sweep = config.replace(epochs=int(phase == 1), fine_tune_epochs=int(phase == 2))
    cached = FastPaths.plan(model, sweep, dataset, lambda: data.arrays).phase(phase)
    if phase == 2:
        apply_unfreeze(model, config.unfreeze, train_batchnorm=config.train_batchnorm)
    swept, batches = ((cached.model, _one_hot(cached.pipeline("train", shuffle=True), len(dataset.classes)))
                      if cached else (model, data.train))
    return find_learning_rate(
        swept, batches, loss=_loss(config), optimizer=config.optimizer, min_lr=min_lr, max_lr=max_lr, steps=steps
    )


def _evaluate(model, classes, data: PreparedData, dataset: Dataset, config: TrainConfig,
              cached: CachedPhase | None = None) -> dict:
    """``classes``, ``val`` and ``test`` metrics (:func:`split_metrics`, as every evaluation reports them).

    The probabilities come from the last phase's cached activations when it had them, else from the images.
    """
    def predict(split: str) -> np.ndarray:
        return cached.predict(split) if cached is not None else predict_probabilities(model, data.arrays[split])

    return split_metrics(classes, dataset, predict, top_k=config.top_k)


def _warn(writer: runs.RunWriter, log: TrainingLog, message: str) -> None:
    """Record a warning in the live log (the Train page shows it) and, if the disk lets it, the run's ``log.txt``."""
    log.add_message(f"Warning: {message}")
    try:
        writer.log(f"warning: {message}")
    except OSError:
        _logger.warning("%s", message)


def _write_run_inputs(writer: runs.RunWriter, config: TrainConfig, dataset: Dataset) -> None:
    """Record what the run trains on: settings, classes, dataset summary and the exact split."""
    writer.write_json("config.json", config.to_dict())
    writer.write_labels(dataset.classes)
    report = dataset.report()
    writer.write_json(runs.DATASET_FILE, {
        "source": report["source"], "root": str(dataset.root.resolve()), "layout": report["layout"],
        "fingerprint": dataset.fingerprint, "num_images": report["num_images"], "splits": report["splits"],
        "split_settings": report["split_settings"], "warnings": report["warnings"],
        "version": report["version"],  # a dataset version's folder (original + changes CSV), or None
    })
    writer.write_split(dataset)  # the truth of the split, with each image's hash: see runs.load_run_dataset


def _scope(strategy):
    """``strategy.scope()``, or a context that does nothing without a strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def _initial_model(config: TrainConfig, classes: list[str], from_run, writer) -> keras.Model:
    """Build a new transfer model, or start from an earlier run's model."""
    if from_run is None:
        return build_model(config.backbone, classes, weights=config.weights, input_size=config.image_size,
                           pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout,
                           seed=config.seed)
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
                        pooling=config.pooling, dense_units=config.dense_units, dropout=config.dropout,
                        seed=config.seed)
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


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float, *, rate_scales=None, teacher=None) -> None:
    """Compile with the config's optimizer and loss; ``rate_scales`` (``id(variable)`` → factor): per-variable
    learning rates (:func:`tltools.training.discriminative.make_layer_rate_optimizer`)."""
    options = {"momentum": config.momentum, "weight_decay": config.weight_decay}
    model.compile(
        optimizer=(make_optimizer(config.optimizer, learning_rate, **options) if rate_scales is None
                   else make_layer_rate_optimizer(config.optimizer, learning_rate, rate_scales, **options)),
        # The unsmoothed cross-entropy, which checkpointing and early stopping watch (callbacks.named_logs);
        # with a teacher the loss is the distillation loss, the metrics read the labels' part of the targets.
        **(teacher.compile_args() if teacher else {
            "loss": _loss(config),
            "metrics": [keras.metrics.CategoricalAccuracy(name="accuracy"),
                        keras.metrics.CategoricalCrossentropy(name="crossentropy")]}),
    )


def _loss(config: TrainConfig) -> keras.losses.Loss:
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def _one_hot(pipeline, num_classes: int):
    """One-hot labels, so that label smoothing works with the categorical cross-entropy."""
    return pipeline.map(lambda images, labels: (images, tf.one_hot(labels, num_classes)))


def _phase_data(cached: CachedPhase | None, data: PreparedData, num_classes: int, config: TrainConfig, teacher,
                class_weight: dict | None) -> tuple:
    """A phase's (train, val) batches: cached activations or images; with a teacher, target rows as labels."""
    if cached and teacher:
        return teacher.cached_pipelines(cached, class_weight)
    if cached:
        return _one_hot(cached.pipeline("train", shuffle=True), num_classes), _one_hot(cached.pipeline("val"),
                                                                                        num_classes)
    if teacher:
        return teacher.image_pipelines(data.arrays, config, class_weight)
    return data.train, data.val  # decodes the images now if no phase has yet


def _prepare_teacher(teacher, dataset: Dataset, model: keras.Model, config: TrainConfig, writer, log) -> None:
    """Get the teacher's logits (feature cache) and say in the run log and the live log what distillation does."""
    log.update(phase_name="the teacher's logits")
    teacher.prepare(dataset, int(model.input_shape[1]), config.batch_size)
    line = (f"Distilling teacher run {teacher.run.run_id} ({teacher.model.name}): temperature "
            f"{teacher.temperature:g}, alpha {teacher.alpha:g}; the teacher's logits "
            + ("found in the feature cache" if teacher.cache_hit else "computed once and cached")
            + (f"; {len(teacher.unlabeled_paths)} unlabelled images" if teacher.unlabeled_paths else ""))
    writer.log(line)
    log.add_message(line)


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


def _standard_callbacks(config: TrainConfig, writer: runs.RunWriter, *,
                        reduce_lr: bool = True) -> list[keras.callbacks.Callback]:
    """Keras' own callbacks for one phase: CSV history, early stopping, LR on plateau (unless ``reduce_lr`` is
    False: a phase on a schedule of its own), TensorBoard."""
    callbacks = [HistoryCSV(str(writer.path / "history.csv"), append=True)]
    if config.early_stopping_patience:  # the trainer restores the best weights itself, after every phase
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="min",
                                                       patience=config.early_stopping_patience,
                                                       min_delta=EARLY_STOPPING_MIN_DELTA))
    if config.reduce_lr_patience and reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=MONITOR, mode="min", factor=config.reduce_lr_factor, patience=config.reduce_lr_patience,
            min_lr=1e-7))
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(writer.path / "tensorboard")))
    return callbacks


def history_frame(run_path: Path | str) -> pd.DataFrame:
    """Return a run's per-epoch history (``history.csv``) as a DataFrame (empty before the first epoch).

    ``loss``/``val_loss`` are the unsmoothed cross-entropy, ``objective``/``val_objective`` what the
    optimizer minimised (label-smoothed, class-weighted); see :mod:`tltools.training.callbacks.named_logs`.
    """
    path = Path(run_path) / "history.csv"
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
