"""What a run calls its loss: one name for one quantity in the history, the live log, charts and the CLI.

A run is compiled with the label-smoothed cross-entropy as its loss (what the
optimizer minimises) and the plain, unsmoothed categorical cross-entropy as a
metric (``crossentropy``). Checkpointing, early stopping and reduce-LR watch
the validation cross-entropy (:data:`MONITOR`), and evaluation's ``loss``
(``metrics.json``) is that same cross-entropy. So everything a user reads
calls the unsmoothed cross-entropy ``loss`` / ``val_loss``, and the quantity
the optimizer minimises, label-smoothed and class-weighted, ``objective`` /
``val_objective``: without label smoothing and class weights the two agree.
"""

import keras

# The epoch-log key that checkpointing, early stopping and reduce-LR-on-plateau watch (lower is better).
MONITOR = "val_crossentropy"

# Keras' log keys -> the names a run records and shows.
_NAMES = {"loss": "objective", "val_loss": "val_objective", "crossentropy": "loss", "val_crossentropy": "val_loss"}


def named_logs(logs) -> dict:
    """Return Keras' epoch or batch ``logs`` with the losses renamed as recorded (see the module docstring).

    Logs of a model compiled without the ``crossentropy`` metric keep their names.
    """
    logs = dict(logs or {})
    if "crossentropy" not in logs:
        return logs
    return {_NAMES.get(key, key): value for key, value in logs.items()}


class HistoryCSV(keras.callbacks.CSVLogger):
    """Keras' ``CSVLogger`` writing the recorded names: ``loss`` is the unsmoothed cross-entropy."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, named_logs(logs))


def objective_differs(record: dict, tolerance: float = 1e-4) -> bool:
    """Whether a recorded epoch's ``objective`` (or ``val_objective``) differs from its cross-entropy ``loss``.

    They differ with label smoothing (and, in training, class weights); then both are worth showing.
    """
    return any(record.get(objective) is not None and record.get(loss) is not None
               and abs(record[objective] - record[loss]) > tolerance
               for objective, loss in (("objective", "loss"), ("val_objective", "val_loss")))
