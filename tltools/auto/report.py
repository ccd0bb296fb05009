"""What an auto run leaves in its run folder and shows: ``trials.csv``, ``auto.json``, the leaderboard and the "why".

``trials.csv`` has one row per trial (:meth:`tltools.auto.search.TrialRecord.row`):
trial number, every searched setting, validation accuracy and cross-entropy,
epochs, seconds, state (``complete``, ``pruned``, ``stopped``) and whether it
was chosen. ``auto.json`` holds the budget, the time used, the chosen trial, the
one-line reason, the backbones used and skipped (with reasons) and the search's
validation scheme.
"""

from pathlib import Path

import pandas as pd

from tltools import fileio
from tltools.auto.search import TrialRecord

TRIALS_FILE = "trials.csv"
AUTO_FILE = "auto.json"


def leaderboard(records: list[TrialRecord]) -> pd.DataFrame:
    """Return the trials as a frame, best first (score, then lower cross-entropy), pruned trials last."""
    frame = pd.DataFrame([record.row() for record in records])
    if frame.empty:
        return frame
    return frame.sort_values(["val_accuracy", "val_cross_entropy", "trial"], ascending=[False, True, True],
                             na_position="last", kind="stable").reset_index(drop=True)


def describe(params: dict) -> str:
    """Return a trial's settings in a few words, e.g. ``efficientnet_lite0, adam lr 0.003, 256 hidden, dropout 0.3``."""
    parts = [params["backbone"], f"{params['optimizer']} lr {params['learning_rate']:.2g}"]
    if params.get("weight_decay") is not None and params["optimizer"] == "adamw":
        parts.append(f"weight decay {params['weight_decay']:.2g}")
    parts.append(f"{params['dense_units']} hidden" if params["dense_units"] else "no hidden layer")
    parts.append(f"dropout {params['dropout']:.2f}")
    if params["label_smoothing"]:
        parts.append(f"label smoothing {params['label_smoothing']:.2f}")
    if params["class_weights"] == "balanced":
        parts.append("balanced class weights")
    return ", ".join(parts)


def why(chosen: TrialRecord, default: TrialRecord | None, trials: int, scheme: str) -> str:
    """Return the one-line reason for the choice, e.g. ``trial 7 (...) reached validation accuracy 0.95 against
    0.88 for the default settings, best of 23 trials (5-fold on train+val)``."""
    if default is None or chosen.number == default.number:
        return (f"the default settings scored best: validation accuracy {chosen.score:.3f}, "
                f"no other of {trials} trials ({scheme}) did better")
    return (f"trial {chosen.number} ({describe(chosen.params)}) reached validation accuracy {chosen.score:.3f} "
            f"against {default.score:.3f} for the default settings, best of {trials} trials ({scheme})")


def write_report(run_path: Path | str, records: list[TrialRecord], summary: dict) -> None:
    """Write ``trials.csv`` (in trial order) and ``auto.json`` into a run folder, atomically.

    Args:
        run_path: The run folder.
        records: Every trial.
        summary: The content of ``auto.json``.
    """
    run_path = Path(run_path)
    frame = pd.DataFrame([record.row() for record in records])
    fileio.write_text(run_path / TRIALS_FILE, frame.to_csv(index=False))
    fileio.write_json(run_path / AUTO_FILE, summary)


def read_trials(run_path: Path | str) -> pd.DataFrame:
    """Return a run's ``trials.csv`` (empty when the run was not an auto run)."""
    path = Path(run_path) / TRIALS_FILE
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()
