"""Training runs on disk: one folder per run, never lost.

A run folder (under :func:`tltools.paths.runs_dir`) holds ``config.json``,
``status.json``, ``labels.txt``, ``dataset.json``, ``splits.csv``, ``history.csv``,
``metrics.json``, ``log.txt`` and ``model.keras`` (the best weights so far).
``splits.csv`` (``relpath,label,split,sha1``) is the truth of the run's split:
everything that needs the run's train, val or test images reads it through
:func:`read_split` or :func:`load_run_dataset`, never re-splits the folder.
Every file is written atomically, so a run killed at any moment leaves its
last good checkpoint and a status that says what happened: a folder found
``running`` whose process is gone is reported as ``interrupted``.
"""

import dataclasses
import datetime
import hashlib
import os
import secrets
import shutil
import uuid
from pathlib import Path

import pandas as pd

from tltools import paths
from tltools.errors import TLToolsError
from tltools.fileio import atomic_path, read_json, write_json, write_text

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
STATUSES = (RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED)
MODEL_FILE = "model.keras"
DATASET_FILE = "dataset.json"
SPLITS_FILE = "splits.csv"
SPLIT_COLUMNS = ["relpath", "label", "split", "sha1"]
# The settings that decided a dataset's split; older runs have them only in config.json.
SPLIT_SETTINGS = ("val_fraction", "test_fraction", "seed")

# Tells this process's runs from those of an earlier process that had the same pid.
_PROCESS_TOKEN = uuid.uuid4().hex


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a run folder says about its run.

    Attributes:
        path: The run folder.
        run_id: The folder's name.
        status: One of :data:`STATUSES`.
        error: The failure message of a failed run, else None.
        config: The run's training configuration (``config.json``).
        metrics: The final metrics (``metrics.json``), or None before they exist.
        classes: Class names in output order (``labels.txt``).
        created_at: When the run started.
        finished_at: When it ended, or None.
    """

    path: Path
    run_id: str
    status: str
    error: str | None
    config: dict
    metrics: dict | None
    classes: list[str]
    created_at: datetime.datetime
    finished_at: datetime.datetime | None

    @property
    def model_path(self) -> Path:
        """The run's best model file (it may not exist before the first epoch ends)."""
        return self.path / MODEL_FILE

    @property
    def best_val_accuracy(self) -> float | None:
        """The validation accuracy in ``metrics.json``, or None."""
        return ((self.metrics or {}).get("val") or {}).get("accuracy")


class RunWriter:
    """Writes one run's folder while it trains.

    Args:
        path: The run folder; created when missing.
    """

    def __init__(self, path: Path):
        self.path = paths.make_folder(path)

    @classmethod
    def create(cls, name: str, *, root: Path | None = None) -> "RunWriter":
        """Create a new, uniquely named run folder ``<time>-<name>-<random>`` under ``root``.

        Raises:
            TLToolsError: The folder cannot be created (names it and ``TLTOOLS_HOME``).
        """
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40]
        path = Path(root or paths.runs_dir()) / f"{stamp}-{safe}-{secrets.token_hex(3)}"
        paths.make_folder(path, exist_ok=False)
        return cls(path)

    @property
    def model_path(self) -> Path:
        """Where the best model is checkpointed."""
        return self.path / MODEL_FILE

    def set_status(self, status: str, error: str | None = None) -> None:
        """Record the run's status (and the error message of a failure)."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        now = datetime.datetime.now().isoformat(timespec="seconds")
        previous = _read_optional(self.path / "status.json") or {"created_at": now}
        write_json(
            self.path / "status.json",
            {
                "status": status,
                "error": error,
                "pid": os.getpid(),
                "process_token": _PROCESS_TOKEN,
                "created_at": previous["created_at"],
                "finished_at": None if status == RUNNING else now,
            },
        )

    def write_json(self, name: str, data) -> None:
        """Write ``<name>`` in the run folder as JSON, atomically."""
        write_json(self.path / name, data)

    def write_split(self, dataset) -> None:
        """Write ``splits.csv``: every image of ``dataset`` (a :class:`tltools.data.Dataset`) with its split and hash."""
        with atomic_path(self.path / SPLITS_FILE) as temporary:
            dataset.items[SPLIT_COLUMNS].to_csv(temporary, index=False)

    def write_labels(self, classes: list[str]) -> None:
        """Write ``labels.txt``: one class name per line, in output order."""
        write_text(self.path / "labels.txt", "".join(f"{name}\n" for name in classes))

    def log(self, message: str) -> None:
        """Append a timestamped line to the run's ``log.txt``."""
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        with open(self.path / "log.txt", "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")


def read_trained_run(path: Path | str, role: str = "run") -> RunInfo:
    """Read a run folder that must hold a trained model (a teacher to distil, a run to adapt).

    Args:
        path: A run folder, or a run id under :func:`tltools.paths.runs_dir`.
        role: What the run is to the caller, for the message (``"run"``, ``"teacher run"``).

    Raises:
        TLToolsError: There is no run there, or it has no ``model.keras`` yet.
    """
    run = read_run(path)
    if not run.model_path.is_file():
        raise TLToolsError(f"{role} {run.run_id} has no model.keras; train it first")
    return run


def read_run(path: Path | str) -> RunInfo:
    """Read a run folder.

    Args:
        path: A run folder, or a run id under :func:`tltools.paths.runs_dir`.

    Raises:
        TLToolsError: There is no run there.
    """
    path = Path(path)
    if not (path / "status.json").is_file():
        candidate = paths.runs_dir() / str(path)
        if not (candidate / "status.json").is_file():
            raise TLToolsError(f"no training run at {path}; `python -m tltools runs` lists the runs")
        path = candidate
    state = read_json(path / "status.json")
    status = state["status"]
    if status == RUNNING and not owner_alive(state):
        status = INTERRUPTED
    labels = path / "labels.txt"
    return RunInfo(
        path=path,
        run_id=path.name,
        status=status,
        error=state.get("error") or ("the process running it ended without finishing" if status == INTERRUPTED else None),
        config=_read_optional(path / "config.json") or {},
        metrics=_read_optional(path / "metrics.json"),
        classes=labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else [],
        created_at=datetime.datetime.fromisoformat(state["created_at"]),
        finished_at=datetime.datetime.fromisoformat(state["finished_at"]) if state.get("finished_at") else None,
    )


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Return every run under ``root`` (default: the runs folder), newest first."""
    root = Path(root or paths.runs_dir())
    runs = [read_run(folder) for folder in root.glob("*/") if (folder / "status.json").is_file()]
    return sorted(runs, key=lambda run: (run.created_at, run.run_id), reverse=True)


def delete_run(path: Path | str) -> None:
    """Delete a finished run's folder.

    Raises:
        TLToolsError: The run is still running in a live process.
    """
    run = read_run(path)
    if run.status == RUNNING:
        raise TLToolsError(f"run {run.run_id} is still training; stop it before deleting it")
    shutil.rmtree(run.path)


def split_settings(run: RunInfo) -> dict:
    """Return the settings (``val_fraction``, ``test_fraction``, ``seed``) that made the run's split.

    They come from ``dataset.json``, or from ``config.json`` for runs written before it recorded them.
    """
    recorded = (_read_optional(run.path / DATASET_FILE) or {}).get("split_settings") or run.config
    return {key: recorded[key] for key in SPLIT_SETTINGS if key in recorded}


def dataset_root(run: RunInfo) -> Path:
    """Return the folder the run's images were read from (``root`` in its ``dataset.json``).

    Raises:
        TLToolsError: The run has no record of its dataset.
    """
    root = (_read_optional(run.path / DATASET_FILE) or {}).get("root")
    if not root:
        raise TLToolsError(f"run {run.run_id} has no {DATASET_FILE} naming its images; load the data again yourself")
    return Path(root)


def read_split(run: RunInfo) -> pd.DataFrame:
    """Return the run's ``splits.csv``: one row per image with ``relpath``, ``label``, ``split``, ``sha1``.

    ``sha1`` is empty for runs written before hashes were recorded.

    Raises:
        TLToolsError: The run has no readable ``splits.csv``.
    """
    file = run.path / SPLITS_FILE
    try:
        rows = pd.read_csv(file, dtype=str, keep_default_na=False)  # a class may be called "NA"
    except (OSError, ValueError) as error:
        raise TLToolsError(f"run {run.run_id} has no readable {SPLITS_FILE} ({error}); "
                           "evaluate its model on data given explicitly") from None
    missing = [column for column in SPLIT_COLUMNS[:3] if column not in rows.columns]
    if missing:
        raise TLToolsError(f"{file} lacks the column(s) {', '.join(missing)}; "
                           "evaluate the run's model on data given explicitly")
    if "sha1" not in rows.columns:
        rows["sha1"] = ""
    return rows[SPLIT_COLUMNS]


def unchanged_images(root: Path, rows: pd.DataFrame) -> pd.Series:
    """Return, per row of :func:`read_split`, whether its file under ``root`` is there with the recorded hash.

    Rows without a recorded hash only need the file to exist.
    """
    def same(relpath: str, sha1: str) -> bool:
        path = root / relpath
        try:
            return path.is_file() and (not sha1 or hashlib.sha1(path.read_bytes()).hexdigest() == sha1)
        except OSError:
            return False

    return pd.Series([same(row.relpath, row.sha1) for row in rows.itertuples()], index=rows.index, dtype=bool)


def load_run_dataset(run: RunInfo, *, limits=None):
    """Load the images the run trained and evaluated on, split exactly as its ``splits.csv`` says.

    The folder is read again (every image checked, as :func:`tltools.data.load_dataset`
    does), then only the images listed in ``splits.csv`` are kept, each in its
    recorded split; images added to the folder since are not part of the run's
    split and are left out. Nothing is ever re-split.

    Args:
        run: The run.
        limits: Safety limits for reading the folder; default :func:`tltools.limits.default_limits`.

    Returns:
        A :class:`tltools.data.Dataset` holding exactly the run's images.

    Raises:
        TLToolsError: The run has no dataset record or ``splits.csv``; its folder
            cannot be read; or listed images are gone, relabelled or changed
            (one line counting them, naming the first and what to do).
    """
    from tltools.data import load_dataset

    rows = read_split(run)
    root = dataset_root(run)
    redo = ("restore them, or give the data as it is now explicitly "
            f"(`python -m tltools evaluate {run.run_id} DATA` evaluates on it)")
    if not root.is_dir():
        raise TLToolsError(f"the folder run {run.run_id} was trained on, {root}, is gone; {redo}")
    version = (_read_optional(run.path / DATASET_FILE) or {}).get("version")  # tltools.health.versions
    if version and not Path(version).is_dir():
        raise TLToolsError(f"the dataset version run {run.run_id} was trained on, {version}, is gone; {redo}")
    try:
        current = load_dataset(version or root, limits=limits, **split_settings(run))
    except TLToolsError as error:
        raise TLToolsError(f"the images run {run.run_id} was trained on cannot be read again: {error}") from None
    now = current.items.set_index("relpath")
    known = rows["relpath"].isin(now.index)
    same = known.copy()
    same[known] = (now.loc[rows.loc[known, "relpath"], "label"].to_numpy() == rows.loc[known, "label"].to_numpy())
    hashed = same & (rows["sha1"] != "")
    same[hashed] = (now.loc[rows.loc[hashed, "relpath"], "sha1"].to_numpy() == rows.loc[hashed, "sha1"].to_numpy())
    if not same.all():
        bad = rows.loc[~same, "relpath"]
        raise TLToolsError(f"{len(bad)} image(s) listed in run {run.run_id}'s split are gone or changed since it "
                           f"trained (first: {bad.iloc[0]}); {redo}")
    dataset = current.with_recorded_split(rows[["relpath", "split"]])
    recorded = (_read_optional(run.path / DATASET_FILE) or {}).get("fingerprint")
    if not hashed.any() and recorded and dataset.fingerprint != recorded:  # a run from before hashes were listed
        raise TLToolsError(f"the images listed in run {run.run_id}'s split have changed since it trained "
                           f"(their fingerprint differs); {redo}")
    return dataset


def owner_record() -> dict:
    """Return what identifies this process to :func:`owner_alive`: its ``pid`` and ``process_token``."""
    return {"pid": os.getpid(), "process_token": _PROCESS_TOKEN}


def owner_alive(state: dict) -> bool:
    """Return whether the process a record names (``pid``, and ``process_token`` for this process's pid) lives.

    Args:
        state: A dict with ``pid`` and optionally ``process_token``, as written by
            :meth:`RunWriter.set_status` or :func:`owner_record`.
    """
    pid = state.get("pid")
    if pid == os.getpid():
        return state.get("process_token") == _PROCESS_TOKEN
    return pid_alive(pid)


def pid_alive(pid) -> bool:
    """Return whether process ``pid`` exists; a zombie (exited, not yet reaped) counts as gone.

    Args:
        pid: A process id (anything else, or 0, is not a live process).
    """
    try:
        if not pid:
            return False
        os.kill(int(pid), 0)
    except PermissionError:
        return True
    except (ProcessLookupError, TypeError, ValueError, OverflowError):
        return False
    try:  # a killed worker whose parent died too may stay a zombie where nothing reaps orphans
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _read_optional(path: Path):
    return read_json(path) if path.is_file() else None


# What the runs table shows of each status: a distinct mark and word, so a stopped run never looks completed.
STATUS_LABELS = {  # marks every system font has (colour emoji are missing on many servers and in headless browsers)
    COMPLETED: "✓ completed",
    STOPPED: "■ stopped early",
    RUNNING: "▶ running",
    FAILED: "✗ failed",
    INTERRUPTED: "⚠ interrupted",
}
# The config.json settings that tell runs apart, with the names the runs table and comparison use.
KEY_SETTINGS = {
    "backbone": "backbone",
    "image_size": "image size",
    "learning_rate": "LR",
    "epochs": "epochs",
    "fine_tune_epochs": "fine-tune epochs",
    "unfreeze": "unfreeze",
}
AUTO_FILE = "auto.json"  # tltools.auto.report.AUTO_FILE: an auto-mode run has it beside its config


def dataset_name(run: RunInfo) -> str | None:
    """Return the user-facing name of the run's data: the uploaded file's name (``source`` in ``dataset.json``).

    Falls back to the data folder's name; None when the run has no dataset record. Never a server path.
    """
    recorded = _read_optional(run.path / DATASET_FILE) or {}
    source = recorded.get("source") or recorded.get("root")
    return Path(str(source)).name if source else None


def dataset_fingerprint(run: RunInfo) -> str | None:
    """Return the fingerprint of the images the run trained on (``dataset.json``), or None."""
    return (_read_optional(run.path / DATASET_FILE) or {}).get("fingerprint")


def held_out_accuracy(run: RunInfo) -> float | None:
    """Return the test-split accuracy in ``metrics.json``, or None (no test split, or no metrics yet)."""
    return ((run.metrics or {}).get("test") or {}).get("accuracy")


def duration_seconds(run: RunInfo) -> float | None:
    """Return how long the run took from start to end in seconds, or None while it has not ended."""
    if run.finished_at is None:
        return None
    return (run.finished_at - run.created_at).total_seconds()


def is_auto(run: RunInfo) -> bool:
    """Return whether auto mode made the run (it left an ``auto.json``)."""
    return (run.path / AUTO_FILE).is_file()


def best_run(candidates: list[RunInfo], fingerprint: str | None = None) -> RunInfo | None:
    """Return the run with the highest validation accuracy among those with a model (ties: the newest).

    Args:
        candidates: Runs, e.g. from :func:`list_runs`.
        fingerprint: Only runs trained on images with this dataset fingerprint
            count; None for any data.

    Returns:
        The best run, or None when no run qualifies. Runs without a validation
        accuracy (still training, or never evaluated) count only when no other run has one.
    """
    usable = [run for run in candidates if run.model_path.is_file()
              and (fingerprint is None or dataset_fingerprint(run) == fingerprint)]
    if not usable:
        return None
    newest_first = sorted(usable, key=lambda run: (run.created_at, run.run_id), reverse=True)
    return max(newest_first, key=lambda run: -1.0 if run.best_val_accuracy is None else run.best_val_accuracy)


def runs_table(candidates: list[RunInfo]) -> pd.DataFrame:
    """Return one row per run: what tells runs apart, for the Runs page and comparisons.

    Columns: ``best`` (★ on the best run of each dataset by validation accuracy), ``run``,
    ``status`` (:data:`STATUS_LABELS`), ``dataset`` (the uploaded name), the settings of
    :data:`KEY_SETTINGS` (``LR`` as a number; ``unfreeze`` as text), ``mode`` (auto or manual),
    ``val accuracy``, ``test accuracy``, ``duration (s)`` and ``started``.
    """
    best = {}
    for run in candidates:
        name = dataset_fingerprint(run) or dataset_name(run)
        if run.best_val_accuracy is not None and (name not in best or run.best_val_accuracy > best[name][0]):
            best[name] = (run.best_val_accuracy, run.run_id)
    best_ids = {run_id for _, run_id in best.values()}
    rows = []
    for run in candidates:
        row = {"best": "★" if run.run_id in best_ids else "", "run": run.run_id,
               "status": STATUS_LABELS.get(run.status, run.status), "dataset": dataset_name(run)}
        for key, title in KEY_SETTINGS.items():
            value = run.config.get(key)
            if key == "image_size" and value is None:
                value = _default_size(run.config.get("backbone"))
            row[title] = str(value) if key == "unfreeze" and value is not None else value
        row.update({"mode": "auto" if is_auto(run) else "manual", "val accuracy": run.best_val_accuracy,
                    "test accuracy": held_out_accuracy(run), "duration (s)": duration_seconds(run),
                    "started": run.created_at})
        rows.append(row)
    columns = ["best", "run", "status", "dataset", *KEY_SETTINGS.values(), "mode", "val accuracy", "test accuracy",
               "duration (s)", "started"]
    return pd.DataFrame(rows, columns=columns)


def settings_comparison(chosen: list[RunInfo]) -> pd.DataFrame:
    """Return the chosen runs' settings side by side: one row per setting, one column per run id.

    Every ``config.json`` key any of the runs has is a row (missing ones are empty), plus ``dataset``
    and ``mode``; values are text so that lists and numbers compare alike.
    """
    keys = {"dataset": None, "mode": None}
    for run in chosen:
        keys.update(dict.fromkeys(run.config))
    table = {}
    for run in chosen:
        values = {"dataset": dataset_name(run) or "", "mode": "auto" if is_auto(run) else "manual"}
        values.update({key: "" if value is None else str(value) for key, value in run.config.items()})
        table[run.run_id] = [values.get(key, "") for key in keys]
    return pd.DataFrame(table, index=pd.Index(list(keys), name="setting"))


def _default_size(backbone: str | None) -> int | None:
    """Return a backbone's default input size (what a run without ``image_size`` used), or None if unknown."""
    from tltools.backbones import get_backbone

    try:
        return get_backbone(str(backbone)).default_size
    except (TLToolsError, KeyError):
        return None


def differing_settings(comparison: pd.DataFrame) -> list[str]:
    """Return the rows of :func:`settings_comparison` whose values differ between the runs."""
    return [key for key, row in comparison.iterrows() if row.nunique() > 1]


def picker_label(run: RunInfo) -> str:
    """Return how a run picker names a run: its id, validation accuracy and status (``… · 95.8 % val · stopped``)."""
    accuracy = run.best_val_accuracy
    shown = "not evaluated" if accuracy is None else f"{accuracy:.1%} val"
    return f"{run.run_id} · {shown} · {STATUS_LABELS.get(run.status, run.status)}"
