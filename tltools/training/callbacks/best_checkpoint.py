"""``BestModelCheckpoint``: keep the best model so far on disk, written atomically."""

import math

import keras


class BestModelCheckpoint(keras.callbacks.Callback):
    """Save the model whenever the monitored validation metric improves.

    Unlike ``keras.callbacks.ModelCheckpoint`` it writes through ``save`` (an
    atomic writer that also stores class names), so a crash mid-save never
    leaves a broken file, and it keeps its best value across several ``fit``
    calls (both phases of a run).

    Args:
        save: ``callable(model)`` that writes the checkpoint.
        monitor: Metric in the epoch logs, e.g. ``"val_loss"``.
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(self, save, monitor: str = "val_loss", mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self.save = save
        self.monitor = monitor
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = None
        self.saves = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(value):
            return
        if (value < self.best) if self.mode == "min" else (value > self.best):
            self.best, self.best_epoch = float(value), epoch + 1
            self.save(self.model)
            self.saves += 1
