"""Training runs on disk: one folder per run, never lost.

A run folder (under :func:`tltools.paths.runs_dir`) holds ``config.json``,
``status.json``, ``labels.txt``, ``dataset.json``, ``history.csv``,
``metrics.json``, ``log.txt`` and ``model.keras`` (the best weights so far).
Every file is written atomically, so a run killed at any moment leaves its
last good checkpoint and a status that says what happened: a folder found
``running`` whose process is gone is reported as ``interrupted``.
"""

import dataclasses
import datetime
import os
import secrets
import shutil
import uuid
from pathlib import Path

from tltools import paths
from tltools.errors import TLToolsError
from tltools.fileio import read_json, write_json, write_text

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
STATUSES = (RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED)
MODEL_FILE = "model.keras"
# The config settings that decide a dataset's split: the same values give the same split.
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
    """Return the run's split settings (``val_fraction``, ``test_fraction``, ``seed``) found in its config."""
    return {key: run.config[key] for key in SPLIT_SETTINGS if key in run.config}


def dataset_root(run: RunInfo) -> Path:
    """Return the folder the run's images were read from (``root`` in its ``dataset.json``).

    Raises:
        TLToolsError: The run has no record of its dataset.
    """
    record = run.path / "dataset.json"
    root = (_read_optional(record) or {}).get("root")
    if not root:
        raise TLToolsError(f"run {run.run_id} has no dataset.json naming its images; load the data again yourself")
    return Path(root)


def load_run_dataset(run: RunInfo):
    """Load the run's dataset again from where it was read, split exactly as training split it.

    Raises:
        TLToolsError: The run has no dataset record, or the images are gone or changed.
    """
    from tltools.data import load_dataset

    return load_dataset(dataset_root(run), **split_settings(run))


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
