"""``MetricsRecorder``: copies Keras logs into a :class:`TrainingLog` and notifies a listener."""

import time

import keras

from tltools.training.callbacks.named_logs import named_logs
from tltools.training.progress import TrainingLog


class MetricsRecorder(keras.callbacks.Callback):
    """Record per-batch and per-epoch logs, the learning rate and epoch timings.

    ``loss`` in the records is the unsmoothed cross-entropy, ``objective`` what the optimizer
    minimises (see :mod:`tltools.training.callbacks.named_logs`).

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

    def on_train_begin(self, logs=None):
        self.log.update(steps_per_epoch=self.params.get("steps") or 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._epoch = epoch + 1
        self.log.update(epoch=epoch + 1, step=0, epoch_started_at=self._epoch_start,
                        learning_rate=self._learning_rate())

    def on_train_batch_end(self, batch, logs=None):
        self._global_step += 1
        self.log.update(step=batch + 1)
        if batch % self.every_n_batches == 0:
            record = {"step": self._global_step, "epoch": self._epoch, **_floats(logs)}
            self.log.add_batch(record)
        self._notify()

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, "phase": self.log.value("phase"), **_floats(logs),
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
