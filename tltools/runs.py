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
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True
    except (ProcessLookupError, TypeError, ValueError, OverflowError):
        return False
    return True


def _read_optional(path: Path):
    return read_json(path) if path.is_file() else None
