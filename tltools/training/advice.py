"""What a finished run's numbers suggest trying next, in plain words, each hint naming the setting to change.

:func:`hints` reads a run folder (``history.csv``, ``config.json``, ``metrics.json``,
``splits.csv``); :func:`hints_from` does the same from the pieces, for callers that
have them in memory (and for tests). The rules, each from the numbers alone:

- **Still improving when it stopped**: the lowest validation loss is in the last
  epochs and it was still falling clearly: raise ``epochs`` (or ``fine_tune_epochs``).
- **Large train/validation gap** at the kept epoch: the model learns the training
  images by heart: more ``augment``, more ``dropout``, fewer unfrozen layers (``unfreeze``).
- **Head alone well below what fine-tuning gives**: validation accuracy under
  :data:`FINE_TUNE_BELOW` without phase 2: ImageNet features fit photos; on other
  images a short fine-tune of the top blocks often adds 5-15 points
  (``fine_tune_epochs``, or auto mode).
- **Fine-tuned at a timid rate and still low**: validation accuracy under
  :data:`FINE_TUNE_BELOW` after phase 2 at a rate below :data:`FINE_TUNE_RATE`:
  raise ``fine_tune_learning_rate`` (measured on the sample digits: 0.86 at 1e-4, 0.96 at 3.3e-4).
- **The head cannot fit even the training images**: training accuracy low too:
  a hidden layer (``dense_units``) or a higher ``learning_rate``.
- **Severe class imbalance** in the training split with class weights off:
  ``class_weights=balanced``.
"""

import dataclasses
from pathlib import Path

import pandas as pd

from tltools.training.class_weights import IMBALANCE_WARNING_RATIO

# Validation accuracy below which a head-only run is told to try fine-tuning or auto mode.
FINE_TUNE_BELOW = 0.90
# Phase-2 learning rate suggested when a fine-tuned run stays below FINE_TUNE_BELOW at a lower one.
FINE_TUNE_RATE = 3e-4
# Train minus validation accuracy (at the kept epoch) that counts as a large gap.
GAP = 0.15
# Training accuracy below which the head is said not to fit the training images.
UNDERFIT_BELOW = 0.75
# Relative fall of the validation loss over the last LOOKBACK epochs that counts as "still improving".
STILL_FALLING = 0.02
LOOKBACK = 5


@dataclasses.dataclass(frozen=True)
class Hint:
    """One suggestion.

    Attributes:
        kind: ``train-longer``, ``overfitting``, ``fine-tune``, ``underfitting`` or ``imbalance``.
        setting: The :class:`tltools.training.TrainConfig` field to change (``epochs``, ``augment``, …).
        value: A value to try for it, or None when it depends.
        text: The hint in plain words, naming the setting (and the CLI option).
    """

    kind: str
    setting: str
    value: object
    text: str

    def __str__(self) -> str:
        return self.text


def hints(run) -> list[Hint]:
    """Return what a finished run's curves and metrics suggest, most important first.

    Args:
        run: A run folder (path) or a :class:`tltools.runs.RunInfo`.

    Returns:
        The hints (empty when nothing stands out, or before the run has metrics).
    """
    path = Path(getattr(run, "path", run))
    from tltools.runs import read_run
    from tltools.training.trainer import history_frame

    info = run if hasattr(run, "metrics") else read_run(path)
    if not info.metrics:
        return []
    counts = None
    splits = path / "splits.csv"
    if splits.is_file():
        table = pd.read_csv(splits, dtype=str, keep_default_na=False)
        counts = table.loc[table["split"] == "train", "label"].value_counts().to_dict()
    return hints_from(history_frame(path), info.config, info.metrics, counts)


def hints_from(history: pd.DataFrame, config, metrics: dict, train_counts: dict | None = None) -> list[Hint]:
    """Return the hints for one run's pieces (see the module's rules).

    Args:
        history: Per-epoch rows with ``accuracy``, ``loss``, ``val_accuracy`` and ``val_loss``
            (the cross-entropy), as ``history.csv`` holds them.
        config: The run's settings (a :class:`tltools.training.TrainConfig` or its ``to_dict()``).
        metrics: The run's ``metrics.json`` (``val`` with ``accuracy``; ``stopped_by_user``).
        train_counts: Training images per class, or None when unknown.

    Returns:
        The hints, most important first.
    """
    settings = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    found = []
    val_accuracy = (metrics.get("val") or {}).get("accuracy")
    fine_tuned = bool(settings.get("fine_tune_epochs"))
    needed = {"accuracy", "val_accuracy", "val_loss"}
    rows = history.dropna(subset=["val_loss"]) if needed <= set(history.columns) else pd.DataFrame()

    if len(rows) >= 2:
        losses = rows["val_loss"].to_numpy(dtype=float)
        best = int(losses.argmin())
        earlier = losses[max(0, len(losses) - 1 - LOOKBACK)]
        if best >= len(losses) - 2 and earlier > 0 and (earlier - losses[best]) / earlier > STILL_FALLING:
            field = "fine_tune_epochs" if fine_tuned else "epochs"
            ran = len(rows)
            how = "was stopped" if metrics.get("stopped_by_user") else "ended"
            found.append(Hint("train-longer", field, 2 * int(settings.get(field) or ran),
                              f"Validation loss was still falling when training {how} after {ran} epochs "
                              f"({earlier:.4g} → {losses[best]:.4g} "
                              f"over the last {min(LOOKBACK, ran - 1)} epochs): train longer — raise {field} "
                              f"(--{field.replace('_', '-')}), early stopping ends it when it stops improving."))
        train_accuracy = float(rows["accuracy"].iloc[best])
        kept_val = float(rows["val_accuracy"].iloc[best])
        if train_accuracy - kept_val >= GAP:
            augment = settings.get("augment") or {}
            augmented = any(value for value in augment.values()) if isinstance(augment, dict) else bool(augment)
            if fine_tuned and str(settings.get("unfreeze")) == "all":
                setting, value, change = ("unfreeze", "top-blocks:2",
                                          "unfreeze fewer layers (unfreeze top-blocks:2, --unfreeze top-blocks:2)")
            elif not augmented:
                setting, value, change = "augment", "light", "turn on augmentation (augment, --augment)"
            else:
                setting, value, change = ("dropout", min(0.6, float(settings.get("dropout") or 0) + 0.2),
                                          "raise dropout (--dropout)")
            found.append(Hint("overfitting", setting, value,
                              f"Training accuracy {train_accuracy:.2f} against validation {kept_val:.2f}: the model "
                              f"learns the training images by heart — {change}"
                              + ("; more dropout also helps" if setting != "dropout" else "") + "."))
        if train_accuracy < UNDERFIT_BELOW and not fine_tuned:
            found.append(Hint("underfitting", "dense_units", 256,
                              f"Even the training images reach only {train_accuracy:.2f} accuracy: the frozen "
                              f"features do not separate these classes for a single-layer head — add a hidden "
                              f"layer (dense_units 256, --dense-units 256), or fine-tune the base "
                              f"(fine_tune_epochs)."))

    if val_accuracy is not None and val_accuracy < FINE_TUNE_BELOW and not fine_tuned:
        found.append(Hint("fine-tune", "fine_tune_epochs", 10,
                          f"Validation accuracy {val_accuracy:.2f} with the base frozen. ImageNet features suit "
                          f"everyday photos; on images unlike them (scans, microscopy, small or synthetic images) a "
                          f"short fine-tune of the top blocks often adds 5-15 points — set fine_tune_epochs to 10 "
                          f"(--fine-tune-epochs 10, unfreeze top-blocks:2), or let auto mode decide "
                          f"(train --auto, or 'Find the best model' in the app)."))

    if val_accuracy is not None and val_accuracy < FINE_TUNE_BELOW and fine_tuned:
        rate = settings.get("fine_tune_learning_rate") or float(settings.get("learning_rate") or 1e-3) / 10
        if float(rate) < FINE_TUNE_RATE:
            found.append(Hint("fine-tune rate", "fine_tune_learning_rate", FINE_TUNE_RATE,
                              f"Validation accuracy {val_accuracy:.2f} after fine-tuning at a learning rate of "
                              f"{float(rate):.2g}: on images unlike ImageNet photos the unfrozen blocks need to move "
                              f"further — set fine_tune_learning_rate to {FINE_TUNE_RATE:g} "
                              f"(--fine-tune-lr {FINE_TUNE_RATE:g}), or let auto mode decide (train --auto)."))

    if train_counts and settings.get("class_weights", "off") == "off":
        sizes = [count for count in train_counts.values() if count > 0]
        if len(sizes) >= 2 and max(sizes) / min(sizes) >= IMBALANCE_WARNING_RATIO:
            largest = max(train_counts, key=train_counts.get)
            smallest = min(train_counts, key=train_counts.get)
            found.append(Hint("imbalance", "class_weights", "balanced",
                              f"Classes are imbalanced ({train_counts[largest]} training images of {largest!r}, "
                              f"{train_counts[smallest]} of {smallest!r}): set class_weights to balanced "
                              f"(--class-weights balanced) so the small classes count as much."))
    return found
