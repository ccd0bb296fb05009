"""``MetricsRecorder``: copies Keras logs into a :class:`TrainingLog` and notifies a listener."""

import time

import keras

from tltools.training.callbacks.named_logs import named_logs
from tltools.training.progress import TrainingLog


class MetricsRecorder(keras.callbacks.Callback):
    """Record per-batch and per-epoch logs, the learning rate, epoch timings and each phase's own epoch count.

    ``loss`` in the records is the unsmoothed cross-entropy, ``objective`` what the optimizer
    minimises (see :mod:`tltools.training.callbacks.named_logs`). Keras reports both as running
    means within the epoch; batch records also get ``batch_loss``, the batch's own cross-entropy,
    recovered from consecutive running means (exact for equal batch sizes; an epoch's smaller
    last batch is weighted as a full one). Each ``fit`` call is one phase: the log's
    ``phase_epoch`` / ``phase_epochs`` count that phase's epochs and its cap.

    Args:
        log: Where records go; readers use ``log.snapshot()`` from any thread.
        on_update: Optional ``callable(log)`` called after every batch and epoch,
            on the training thread (it must be quick and must not touch the UI).
        every_n_batches: Record one batch in this many (all epochs are recorded).
    """

    def __init__(self, log: TrainingLog, on_update=None, every_n_batches: int = 1):
        super().__init__()
        self.log = log
        self.on_update = on_update
        self.every_n_batches = max(1, every_n_batches)
        self._global_step = 0
        self._epoch = 0
        self._epoch_start = 0.0
        self._first_epoch = None  # of the current fit call (phase)
        self._running_loss = 0.0

    def on_train_begin(self, logs=None):
        self._first_epoch = None
        self.log.update(steps_per_epoch=self.params.get("steps") or 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._epoch = epoch + 1
        self._running_loss = 0.0
        if self._first_epoch is None:
            self._first_epoch = epoch
        self.log.update(epoch=epoch + 1, step=0, epoch_started_at=self._epoch_start,
                        phase_epoch=epoch - self._first_epoch + 1,
                        phase_epochs=max((self.params.get("epochs") or 0) - self._first_epoch, 0),
                        learning_rate=self._learning_rate())

    def on_train_batch_end(self, batch, logs=None):
        self._global_step += 1
        self.log.update(step=batch + 1)
        values = _floats(logs)
        if "loss" in values:  # the running mean after batch+1 batches -> this batch's own loss
            values["batch_loss"] = (batch + 1) * values["loss"] - batch * self._running_loss
            self._running_loss = values["loss"]
        if batch % self.every_n_batches == 0:
            record = {"step": self._global_step, "epoch": self._epoch, **values}
            self.log.add_batch(record)
        self._notify()

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "phase": self.log.value("phase"),
                  "phase_epoch": epoch - (self._first_epoch or 0) + 1, **_floats(logs),
                  "learning_rate": self._learning_rate(), "seconds": time.time() - self._epoch_start}
        self.log.add_epoch(record)
        self._notify()

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def _notify(self):
        if self.on_update is not None:
            self.on_update(self.log)


def _floats(logs) -> dict:
    """The logs as floats, losses named as a run records them (:func:`named_logs`)."""
    return {key: float(value) for key, value in named_logs(logs).items() if key != "learning_rate"}
