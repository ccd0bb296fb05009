"""``ThrottledCheckpoint``: a best-model checkpoint that keeps up with sub-second epochs."""

import time

from tltools.training.callbacks.best_checkpoint import BestModelCheckpoint


class ThrottledCheckpoint(BestModelCheckpoint):
    """Like :class:`BestModelCheckpoint`, but writes at most once every ``min_interval`` seconds.

    Writing a whole model takes about a second on a CPU, longer than an epoch
    of a head trained on cached features. This checkpoint keeps the best
    weights in memory at every improvement and writes them through ``save``
    at the first improvement, then when ``min_interval`` seconds have passed
    since the last write, and always when a ``fit`` ends, stopped or not.
    Epochs slower than ``min_interval`` are written at every improvement. A
    killed process keeps a checkpoint at most ``min_interval`` seconds older
    than its best, and has one from its first finished epoch on.

    Args:
        save: ``callable(model)`` that writes the checkpoint; it is passed the
            model being fit, holding the best weights.
        monitor: Metric in the epoch logs, e.g. ``"val_loss"``.
        mode: ``"min"`` or ``"max"``.
        min_interval: Least seconds between two writes.
    """

    def __init__(self, save, monitor: str = "val_loss", mode: str = "min", min_interval: float = 10.0):
        super().__init__(self._improved, monitor=monitor, mode=mode)
        self._write = save
        self.min_interval = min_interval
        self.writes = 0
        self.best_model = None
        self.best_weights = None
        self._pending = False
        self._last_write = None

    def on_train_end(self, logs=None):
        self.flush()

    def _improved(self, model) -> None:
        self.best_model, self.best_weights = model, model.get_weights()
        if self._last_write is None or time.monotonic() - self._last_write >= self.min_interval:
            self._save(model)
        else:
            self._pending = True

    def flush(self) -> None:
        """Write the best weights now if they have not been written yet."""
        if not self._pending:
            return
        current = self.best_model.get_weights()
        self.best_model.set_weights(self.best_weights)
        try:
            self._save(self.best_model)
        finally:
            self.best_model.set_weights(current)

    def restore_best(self, model) -> bool:
        """Put the best weights back into ``model`` if they were taken from it; return whether they were."""
        if self.best_model is not model:
            return False
        model.set_weights(self.best_weights)
        return True

    def _save(self, model) -> None:
        self._write(model)
        self.writes += 1
        self._pending = False
        self._last_write = time.monotonic()
