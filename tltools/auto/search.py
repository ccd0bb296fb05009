"""The head search: Optuna trials, each training a small Keras head on cached pooled features.

A trial trains exactly the head :func:`tltools.model.build_model` puts on a
backbone (optional ReLU dense layer, dropout, softmax) with the trainer's loss
and optimizers, on whole feature arrays in memory, so an epoch costs tens of
milliseconds. A trial is scored at its epoch with the lowest (unsmoothed)
validation cross-entropy, the epoch the trainer's checkpoint keeps, and stops
after ``patience`` epochs without improvement; Optuna's pruner ends trials
whose best validation accuracy so far is below the median of earlier trials
at the same epoch.

Only training and validation rows are ever handed to a trial: the test split
is not an input of this module. With few validation images (below
``kfold_below``), a trial's score is the mean over stratified folds of
train+val, so a choice is not made on a handful of images.

Every random draw of a trial comes from seeds derived from the search seed
and the trial number (initializers, dropout, the shuffle): with the same
features, seed and number of trials, the same trial wins.
"""

import dataclasses
import math
import time

import keras
import numpy as np
import optuna
import tensorflow as tf
from sklearn.model_selection import StratifiedKFold

from tltools.training.class_weights import balanced_class_weights
from tltools.training.config import EARLY_STOPPING_MIN_DELTA
from tltools.training.optimizers import make_optimizer

# Reduce-LR-on-plateau inside trials as the trainer's keras.callbacks.ReduceLROnPlateau does it: its default
# min_delta and the trainer's min_lr.
REDUCE_LR_MIN_DELTA = 1e-4
MIN_LEARNING_RATE = 1e-7
# Parameters a trial sets, in the order trials.csv lists them.
PARAMS = ("backbone", "learning_rate", "optimizer", "weight_decay", "dropout", "label_smoothing", "dense_units",
          "class_weights")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The ranges the search draws head settings from (a base config's values are always inside).

    Attributes:
        learning_rate: Low and high, drawn on a log scale.
        optimizers: Optimizer names; ``adamw`` adds a weight decay drawn from ``weight_decay`` (log scale).
        weight_decay: Low and high of AdamW's weight decay.
        dropout: Low and high.
        label_smoothing: Low and high.
        dense_units: Choices of hidden units (0: no hidden layer).
        class_weights: ``off`` and/or ``balanced``.
    """

    learning_rate: tuple[float, float] = (1e-4, 3e-2)
    optimizers: tuple[str, ...] = ("adam", "adamw")
    weight_decay: tuple[float, float] = (1e-5, 1e-1)
    dropout: tuple[float, float] = (0.0, 0.6)
    label_smoothing: tuple[float, float] = (0.0, 0.2)
    dense_units: tuple[int, ...] = (0, 128, 256, 512)
    class_weights: tuple[str, ...] = ("off", "balanced")

    def including(self, params: dict) -> "SearchSpace":
        """Return the space widened so that ``params`` (e.g. the default config's) lie inside it."""
        def span(bounds, value):
            return (min(bounds[0], value), max(bounds[1], value))

        def choices(options, value):
            return options if value in options else (*options, value)

        return dataclasses.replace(
            self,
            learning_rate=span(self.learning_rate, params["learning_rate"]),
            optimizers=choices(self.optimizers, params["optimizer"]),
            weight_decay=span(self.weight_decay, params.get("weight_decay", self.weight_decay[0])),
            dropout=span(self.dropout, params["dropout"]),
            label_smoothing=span(self.label_smoothing, params["label_smoothing"]),
            dense_units=choices(self.dense_units, params["dense_units"]),
            class_weights=choices(self.class_weights, params["class_weights"]),
        )

    def suggest(self, trial: optuna.Trial, backbones: list[str]) -> dict:
        """Draw one trial's settings (weight decay only for ``adamw``)."""
        params = {"backbone": trial.suggest_categorical("backbone", backbones),
                  "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
                  "optimizer": trial.suggest_categorical("optimizer", self.optimizers)}
        if params["optimizer"] == "adamw":
            params["weight_decay"] = trial.suggest_float("weight_decay", *self.weight_decay, log=True)
        params["dropout"] = trial.suggest_float("dropout", *self.dropout)
        params["label_smoothing"] = trial.suggest_float("label_smoothing", *self.label_smoothing)
        params["dense_units"] = trial.suggest_categorical("dense_units", self.dense_units)
        params["class_weights"] = trial.suggest_categorical("class_weights", self.class_weights)
        return params


@dataclasses.dataclass
class TrialRecord:
    """One trial, as ``trials.csv`` and a leaderboard show it.

    Attributes:
        number: Trial number (0 is the default config's head).
        params: The settings tried (see :data:`PARAMS`; ``weight_decay`` only for ``adamw``).
        score: Validation accuracy of the best epoch (mean over folds with k-fold); None if pruned first.
        val_cross_entropy: Unsmoothed validation cross-entropy at that epoch (the tie-break).
        epochs: Epochs trained (summed over folds).
        epoch_cap: Most epochs the trial could train; ``patience``: its early-stopping patience.
        seconds: Wall time of the trial.
        state: ``complete``, ``pruned`` (by the pruner) or ``stopped`` (the time budget ran out inside it).
        chosen: Whether this trial's settings became the run.
    """

    number: int
    params: dict
    score: float | None
    val_cross_entropy: float | None
    epochs: int
    epoch_cap: int
    patience: int
    seconds: float
    state: str
    chosen: bool = False

    def row(self) -> dict:
        """Return the record as one flat ``trials.csv`` row."""
        return {"trial": self.number, **{name: self.params.get(name) for name in PARAMS},
                "val_accuracy": self.score, "val_cross_entropy": self.val_cross_entropy, "epochs": self.epochs,
                "epoch_cap": self.epoch_cap, "patience": self.patience, "seconds": round(self.seconds, 2),
                "state": self.state, "chosen": self.chosen}


@dataclasses.dataclass
class FeatureSplits:
    """The rows a search may use: per backbone the features of every image, and the train and val rows.

    Attributes:
        features: Backbone name → array (images, feature size) in cache order (``features[rows]`` works).
        rows: ``train`` and ``val`` → rows of those images in the arrays.
        labels: ``train`` and ``val`` → integer labels, aligned with ``rows``.
        num_classes: Number of classes.
    """

    features: dict[str, object]
    rows: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    num_classes: int

    def arrays(self, backbone: str, split: str) -> np.ndarray:
        """Return one split's features of one backbone as a float32 array in memory."""
        return np.asarray(self.features[backbone][self.rows[split]], dtype=np.float32)


def folds(labels: dict[str, np.ndarray], *, kfold_below: int, seed: int, most: int = 5) -> list[tuple]:
    """Return the (train, val) index pairs a trial trains and scores on, over the concatenation train+val.

    With at least ``kfold_below`` validation images: the given split, one pair.
    Otherwise stratified k-fold over train+val with k = min(``most``, the
    smallest class's count), or the given split when a class has a single image.
    """
    train, val = len(labels["train"]), len(labels["val"])
    given = [(np.arange(train), np.arange(train, train + val))]
    if val >= kfold_below:
        return given
    both = np.concatenate([labels["train"], labels["val"]])
    k = min(most, int(np.bincount(both).min()))
    if k < 2:
        return given
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(both)), both))


class _Pruned(Exception):
    """Raised inside a trial when Optuna's pruner ends it."""


class HeadFitter:
    """One head (settings fixed), compiled once and trained from the same start on any number of folds.

    Keras traces a model's training step on its first ``fit`` (about a second);
    reusing the model for every fold of a trial, with its weights and optimizer
    state reset to their initial values, pays that once per trial.

    Args:
        features: Size of one feature vector.
        num_classes: Classes of the softmax.
        params: Head settings (see :data:`PARAMS`; ``backbone`` is ignored here).
        seed: Seed of the initializers and dropout.
    """

    def __init__(self, features: int, num_classes: int, params: dict, seed: int):
        self.params, self.num_classes = params, num_classes
        self.model = _head(features, num_classes, params, seed)
        self.model.compile(optimizer=make_optimizer(params["optimizer"], params["learning_rate"],
                                                    weight_decay=params.get("weight_decay", 0.0)),
                           loss=keras.losses.CategoricalCrossentropy(label_smoothing=params["label_smoothing"]))
        self.model.optimizer.build(self.model.trainable_variables)
        self._start = [keras.ops.convert_to_numpy(variable) for variable in self.model.weights]
        self._optimizer_start = [keras.ops.convert_to_numpy(variable) for variable in self.model.optimizer.variables]

    def fit(self, x_train, y_train, x_val, y_val, *, epochs: int, patience: int, batch_size: int, seed: int,
            on_epoch=None, stop_at=None, clock=time.monotonic,
            reduce_lr: tuple[int, float] = (0, 0.2)) -> tuple[float, float, int, bool]:
        """Train from the initial weights and return validation scores.

        Args:
            x_train, y_train, x_val, y_val: Features (float32) and integer labels.
            epochs: Most epochs.
            patience: Epochs without a lower validation cross-entropy before stopping; 0 trains all ``epochs``.
            batch_size: Examples per step.
            seed: Seed of the shuffle.
            on_epoch: Optional ``callable(epoch, best val accuracy so far)``; may raise to end the trial.
            stop_at: Optional time (on ``clock``) after which training stops.
            clock: Time source for ``stop_at``.
            reduce_lr: ``(patience, factor)``: the learning rate is multiplied by ``factor`` after ``patience``
                epochs without a lower validation cross-entropy, as Keras' ``ReduceLROnPlateau`` does in the
                trainer (patience 0: never).

        Returns:
            ``(val accuracy, val cross-entropy, epochs run, stopped by stop_at)``, the scores of the
            epoch with the lowest val cross-entropy (the epoch the trainer's checkpoint would keep).
        """
        for variable, value in zip(self.model.weights, self._start):
            variable.assign(value)
        for variable, value in zip(self.model.optimizer.variables, self._optimizer_start):
            variable.assign(value)
        self.model.optimizer.learning_rate = self.params["learning_rate"]
        train = (tf.data.Dataset.from_tensor_slices((x_train, tf.one_hot(y_train, self.num_classes)))
                 .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True).batch(batch_size))
        watch = self.watch = _Watch(x_val, y_val, patience, on_epoch, stop_at, clock, reduce_lr)
        class_weight = (balanced_class_weights(y_train, self.num_classes)
                        if self.params["class_weights"] == "balanced" else None)
        # No validation_data: Keras would trace a second graph per head; the watch scores val eagerly instead.
        self.model.fit(train, epochs=epochs, class_weight=class_weight, callbacks=[watch], shuffle=False, verbose=0)
        return watch.best_accuracy, watch.best_cross_entropy, watch.epochs, watch.out_of_time


def _head(features: int, num_classes: int, params: dict, seed: int) -> keras.Model:
    """The head of :func:`tltools.model.build_model` on a features input, every random draw seeded."""
    inputs = keras.Input(shape=(features,), name="features")
    x = inputs
    if params["dense_units"]:
        x = keras.layers.Dense(params["dense_units"], activation="relu", name="head_dense",
                               kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    if params["dropout"]:
        x = keras.layers.Dropout(params["dropout"], seed=seed + 1, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2))(x)
    return keras.Model(inputs, outputs)


class _Watch(keras.callbacks.Callback):
    """Scores val after each epoch; keeps the lowest val cross-entropy's scores, stops on patience or time.

    The cross-entropy is unsmoothed, so heads with different label smoothing compare on one scale.
    """

    def __init__(self, x_val, y_val, patience, on_epoch, stop_at, clock, reduce_lr=(0, 0.2)):
        super().__init__()
        self.reduce_patience, self.reduce_factor = reduce_lr
        self.reduce_best, self.reduce_waited = math.inf, 0
        self.x_val, self.y_val = x_val, y_val
        self.patience, self.on_epoch, self.stop_at, self.clock = patience, on_epoch, stop_at, clock
        self.best_cross_entropy, self.best_accuracy = math.inf, 0.0
        self.reference = math.inf
        self.waited = self.epochs = 0
        self.out_of_time = False

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        probabilities = keras.ops.convert_to_numpy(self.model(self.x_val, training=False)).astype(np.float64)
        picked = probabilities[np.arange(len(self.y_val)), self.y_val]
        cross_entropy = float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
        if np.isfinite(cross_entropy) and cross_entropy < self.best_cross_entropy:  # the epoch a checkpoint keeps
            self.best_cross_entropy = cross_entropy
            self.best_accuracy = float(np.mean(probabilities.argmax(axis=1) == self.y_val))
        if np.isfinite(cross_entropy) and cross_entropy < self.reference - EARLY_STOPPING_MIN_DELTA:
            self.reference, self.waited = cross_entropy, 0  # patience counts as the trainer's early stopping does
        else:
            self.waited += 1
            if self.patience and self.waited >= self.patience:
                self.model.stop_training = True
        if self.reduce_patience:  # Keras' ReduceLROnPlateau: min_delta 1e-4, no cooldown, min_lr 1e-7
            if np.isfinite(cross_entropy) and cross_entropy < self.reduce_best - REDUCE_LR_MIN_DELTA:
                self.reduce_best, self.reduce_waited = cross_entropy, 0
            else:
                self.reduce_waited += 1
                if self.reduce_waited >= self.reduce_patience:
                    rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                    self.model.optimizer.learning_rate = max(rate * self.reduce_factor, MIN_LEARNING_RATE)
                    self.reduce_waited = 0
        if self.on_epoch is not None:
            self.on_epoch(epoch, self.best_accuracy)
        if self.stop_at is not None and self.clock() > self.stop_at:
            self.out_of_time = True
            self.model.stop_training = True


class HeadSearch:
    """An Optuna study over head settings and backbones, on cached features.

    Args:
        data: The features and the train/val rows (never test rows).
        seed: Seed of the sampler and of every trial.
        default: The default config's head settings; enqueued as trial 0 so the search
            can only return something at least as good on validation.
        default_schedule: ``(epochs, patience)`` of the default config, used by trial 0.
        schedule: ``(epoch cap, patience)`` of every other trial.
        batch_size: Examples per step.
        space: The ranges searched (widened to include ``default``).
        kfold_below: Validation images below which trials score by k-fold on train+val.
        kfold_most: Most folds of that k-fold.
        reduce_lr: ``(patience, factor)`` of reduce-LR-on-plateau inside every trial, as the trainer's run
            does it (patience 0: off), so that a trial and the final run of its settings follow one schedule.
        clock: Time source (that of the run's deadline).
    """

    def __init__(self, data: FeatureSplits, *, seed: int, default: dict, default_schedule: tuple[int, int],
                 schedule: tuple[int, int] = (200, 15), batch_size: int = 32, space: SearchSpace | None = None,
                 kfold_below: int = 100, kfold_most: int = 5, reduce_lr: tuple[int, float] = (0, 0.2),
                 clock=time.monotonic):
        self.data, self.seed, self.batch_size, self.clock = data, seed, batch_size, clock
        self.reduce_lr = reduce_lr
        self.default_schedule, self.schedule = default_schedule, schedule
        self.backbones = list(data.features)
        self.space = (space or SearchSpace()).including(default)
        self.folds = folds(data.labels, kfold_below=kfold_below, seed=seed, most=kfold_most)
        self.records: list[TrialRecord] = []
        warmup = 1 if len(self.folds) > 1 else schedule[1]  # pruning compares after folds, or after epochs
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=8),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup),
        )
        self.study.enqueue_trial({name: value for name, value in default.items()
                                  if name != "weight_decay" or default["optimizer"] == "adamw"})
        self._x = {backbone: np.concatenate([data.arrays(backbone, "train"), data.arrays(backbone, "val")])
                   for backbone in self.backbones}
        self._y = np.concatenate([data.labels["train"], data.labels["val"]])

    @property
    def kfold(self) -> int:
        """Folds per trial (1: the given train/val split)."""
        return len(self.folds)

    def run_trial(self, *, stop_at=None) -> TrialRecord:
        """Run the next trial (the default's first), record it and return its record."""
        started = self.clock()
        trial = self.study.ask()
        params = self.space.suggest(trial, self.backbones)
        epochs, patience = self.default_schedule if trial.number == 0 else self.schedule
        scores, entropies, epochs_run, state = [], [], 0, "complete"
        try:
            fitter = HeadFitter(self._x[params["backbone"]].shape[1], self.data.num_classes, params,
                                self.seed + 1000 * trial.number)
            for index, (train, val) in enumerate(self.folds):
                def on_epoch(epoch, best):
                    if len(self.folds) == 1:
                        trial.report(best, epoch)
                        if trial.should_prune():
                            raise _Pruned

                x = self._x[params["backbone"]]
                accuracy, entropy, ran, out_of_time = fitter.fit(
                    x[train], self._y[train], x[val], self._y[val], epochs=epochs, patience=patience,
                    batch_size=self.batch_size, seed=self.seed + 1000 * trial.number + index, on_epoch=on_epoch,
                    stop_at=stop_at, clock=self.clock, reduce_lr=self.reduce_lr)
                scores.append(accuracy)
                entropies.append(entropy)
                epochs_run += ran
                if out_of_time:
                    state = "stopped"
                    break
                if len(self.folds) > 1:
                    trial.report(float(np.mean(scores)), index)
                    if index + 1 < len(self.folds) and trial.should_prune():
                        raise _Pruned
        except _Pruned:
            state = "pruned"
            epochs_run += fitter.watch.epochs
        score = float(np.mean(scores)) if scores else None
        entropy = float(np.mean(entropies)) if entropies else None
        if state == "pruned":
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, score)
        record = TrialRecord(trial.number, params, score, entropy, epochs_run, epochs, patience,
                             self.clock() - started, state)
        self.records.append(record)
        return record

    def best(self) -> TrialRecord:
        """Return the winning trial: highest score, then lowest cross-entropy, then earliest.

        Pruned trials never win; trials the budget cut short only when no trial completed.

        Raises:
            ValueError: No trial has a score yet.
        """
        scored = [record for record in self.records if record.state == "complete" and record.score is not None]
        scored = scored or [record for record in self.records if record.state == "stopped" and record.score is not None]
        if not scored:
            raise ValueError("no trial has finished")
        return min(scored, key=lambda record: (-record.score, record.val_cross_entropy, record.number))
