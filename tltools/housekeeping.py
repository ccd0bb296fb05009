"""Cleaning old extracted datasets and caches by age and size budgets, never what is in use.

Two areas are cleaned, each against its own size budget:

- ``datasets``: extracted uploads under :func:`tltools.paths.datasets_dir`, a
  ``<name>-<16 hex digits>/`` folder with its ``.json`` manifest, and the built-in
  sample. Nothing else in that folder is touched: it may be the user's own;
- ``cache``: feature-cache entries (``features/<stem>.npy`` with its ``.json``),
  decoded-image caches (``decoded/*.npy``) and saved data-health reports
  (``health/*.pkl``, :mod:`tltools.health.task`) under :func:`tltools.paths.cache_dir`.
  Converted backbone weights (``backbones/``) are kept.

An item goes when it was last used more than ``max_age_days`` ago, or, least
recently used first, while its area is over its budget. "Last used" is the
modification time of the dataset folder (refreshed by :func:`lease_dataset`
whenever a dataset is loaded from it), of a feature entry's ``.json`` and of a
decoded ``.npy`` (both refreshed on every cache hit).

Never deleted: anything under ``runs/`` (users delete runs themselves), the dataset
versions the Data health page saves (folders holding ``tltools-version.json``,
:mod:`tltools.health.versions`: their names are not an extracted upload's, so they are never
candidates) and the extracted upload each of them is built on, anything
used within the last hour (:data:`GRACE_SECONDS`), a dataset folder leased by a
live process (:func:`lease_dataset`: a ``<folder>.lease-<pid>`` file beside it
while a loaded :class:`~tltools.data.Dataset` lives) or read by a run whose status
is ``running`` in a live process (runs record their folder in ``dataset.json``).
Leftovers of interrupted writes (staging folders, temporary files, a cache entry
without its description) untouched for an hour are removed, and so are the lease
files of processes that have ended.

:func:`clean` does the work and returns a :class:`CleanReport`;
:func:`maybe_clean` runs it in the background at most once an hour (the dataset
loader calls it) and never raises; ``python -m tltools clean`` runs it by hand.
"""

import contextlib
import dataclasses
import datetime
import logging
import os
import re
import shutil
import threading
import time
import weakref
from pathlib import Path

from tltools import fileio, paths, runs
from tltools.fileio import format_bytes
from tltools.settings import Budget

DAY_SECONDS = 86_400.0
# Items used, and partial files written, within this many seconds are never deleted.
GRACE_SECONDS = 3600.0
# maybe_clean() runs clean() at most once per this many seconds.
AUTO_INTERVAL_SECONDS = 3600.0
STAMP_FILE = "housekeeping.json"
DATASETS, CACHE = "datasets", "cache"
_LEASE = re.compile(r"^(?P<folder>.+)\.lease-(?P<pid>\d+)$")
# Names tltools gives extracted uploads (``<stem>-<16 hex digits of the archive's SHA-256>``); anything
# else in the datasets folder is the user's own and never touched (TLTOOLS_HOME defaults to the
# current folder, which may hold a ``datasets/`` folder of the user's).
_EXTRACTED = re.compile(r"^.+-[0-9a-f]{16}$")

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Removal:
    """One item :func:`clean` deleted (or would delete, or kept because it is in use).

    Attributes:
        path: The folder or file.
        kind: ``dataset``, ``features``, ``decoded``, ``health`` (a saved health report), ``partial`` or ``lease``.
        bytes: Its size.
        reason: Why it goes, or for a kept item why it stays.
    """

    path: Path
    kind: str
    bytes: int
    reason: str

    def to_dict(self) -> dict:
        """Return it as JSON-friendly values."""
        return {"path": str(self.path), "kind": self.kind, "bytes": self.bytes, "reason": self.reason}


@dataclasses.dataclass
class CleanReport:
    """What :func:`clean` did.

    Attributes:
        dry_run: True when nothing was deleted (``removed`` lists what would have been).
        budget: The budget applied.
        removed: Items deleted, oldest use first within each area.
        kept: Items that were too old or over budget but are in use, with the reason.
        errors: Items that could not be deleted, with the error.
        areas: Per area (``datasets``, ``cache``): ``bytes_before``, ``bytes_after``, ``max_bytes``.
    """

    dry_run: bool
    budget: Budget
    removed: list[Removal] = dataclasses.field(default_factory=list)
    kept: list[Removal] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    areas: dict[str, dict] = dataclasses.field(default_factory=dict)

    @property
    def freed_bytes(self) -> int:
        """Bytes deleted (or that would be, in a dry run)."""
        return sum(item.bytes for item in self.removed)

    def to_dict(self) -> dict:
        """Return the report as JSON-friendly values."""
        return {
            "dry_run": self.dry_run,
            "budget": dataclasses.asdict(self.budget),
            "freed_bytes": self.freed_bytes,
            "removed": [item.to_dict() for item in self.removed],
            "kept": [item.to_dict() for item in self.kept],
            "errors": list(self.errors),
            "areas": self.areas,
        }


@dataclasses.dataclass(frozen=True)
class _Item:
    area: str
    kind: str
    path: Path
    companions: tuple[Path, ...]  # deleted with it: a manifest, a description
    bytes: int
    last_used: float


# --- leases -----------------------------------------------------------------------------------------------

_lease_lock = threading.Lock()
_lease_counts: dict[Path, int] = {}


class DatasetLease:
    """Keeps an extracted dataset folder from being cleaned while this object lives (or until :meth:`release`).

    Every lease of a folder in one process shares one file, ``<folder>.lease-<pid>``,
    removed when the last of them is released or garbage-collected. Copies of a
    :class:`~tltools.data.Dataset` share its lease. Leases of processes that have
    ended are ignored (and removed) by :func:`clean`.

    Args:
        folder: The extracted dataset folder (a child of the datasets folder).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = _lease_path(self.folder, os.getpid())
        _acquire(self.path)
        self._release = weakref.finalize(self, _release, self.path, os.getpid())

    def release(self) -> None:
        """Give the lease up now (later calls do nothing)."""
        self._release()

    def __reduce__(self):  # a copy (or an unpickled one in another process) holds a lease of its own
        return DatasetLease, (self.folder,)

    def __repr__(self) -> str:
        return f"DatasetLease({str(self.folder)!r}, active={self._release.alive})"


def lease_dataset(folder: Path | str) -> DatasetLease | None:
    """Lease the extracted dataset folder that holds ``folder``, and mark it used now.

    Args:
        folder: A dataset root: the extracted folder itself or a folder inside it.

    Returns:
        The lease, or None when ``folder`` is not inside the datasets folder (a
        user's own folder is never cleaned, so there is nothing to protect).
    """
    top = _extracted_folder(Path(folder))
    if top is None:
        return None
    with contextlib.suppress(OSError):
        os.utime(top)  # last used: now
    return DatasetLease(top)


def _extracted_folder(folder: Path) -> Path | None:
    """Return the child of the datasets folder that ``folder`` is or lies in, or None."""
    try:
        root = paths.datasets_dir().resolve()
        relative = folder.resolve().relative_to(root)
    except (OSError, ValueError):
        return None
    if not relative.parts or relative.parts[0].startswith("."):
        return None
    return root / relative.parts[0]


def _lease_path(folder: Path, pid: int) -> Path:
    return folder.with_name(f"{folder.name}.lease-{pid}")


def _acquire(path: Path) -> None:
    with _lease_lock:
        count = _lease_counts.get(path, 0)
        if count == 0 or not path.exists():
            try:
                fileio.write_json(path, {**runs.owner_record(), "folder": path.name.rsplit(".lease-", 1)[0]})
            except OSError as error:  # the home is not writable: loading still works, cleaning just cannot see it
                _logger.warning("could not write the dataset lease %s: %s", path, error)
        _lease_counts[path] = count + 1


def _release(path: Path, pid: int) -> None:
    if os.getpid() != pid:  # a forked child must not drop its parent's lease
        return
    with _lease_lock:
        count = _lease_counts.get(path, 0) - 1
        if count > 0:
            _lease_counts[path] = count
            return
        _lease_counts.pop(path, None)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _lease_holders(datasets_root: Path) -> tuple[dict[str, list[int]], list[Path]]:
    """Return {folder name: [pids of live holders]} and the lease files of ended processes."""
    live: dict[str, list[int]] = {}
    dead: list[Path] = []
    if not datasets_root.is_dir():
        return live, dead
    for path in datasets_root.iterdir():
        match = _LEASE.match(path.name)
        if not match or not path.is_file():
            continue
        pid = int(match["pid"])
        try:
            record = fileio.read_json(path)
            record = record if isinstance(record, dict) and record.get("pid") == pid else {"pid": pid}
        except (OSError, ValueError):
            record = {"pid": pid}
        if runs.owner_alive(record):
            live.setdefault(match["folder"], []).append(pid)
        else:
            dead.append(path)
    return live, dead


# --- cleaning -----------------------------------------------------------------------------------------------


def clean(budget: Budget | None = None, *, dry_run: bool = False, home: Path | str | None = None,
          cache: Path | str | None = None, now: float | None = None) -> CleanReport:
    """Delete old and over-budget datasets and cache entries, least recently used first, never what is in use.

    Args:
        budget: Size budgets per area and the age limit; defaults to :meth:`Budget.from_env`.
        dry_run: Only report what would be deleted.
        home: The ``TLTOOLS_HOME`` to clean (its ``datasets/``; ``runs/`` is only read);
            defaults to :func:`tltools.paths.home_dir`.
        cache: The cache folder to clean; defaults to :func:`tltools.paths.cache_dir`.
        now: The current time (seconds since the epoch), for tests.

    Returns:
        What was (or would be) deleted, what was kept because it is in use, and the sizes per area.
        Items that cannot be deleted are listed in ``errors``; nothing is raised for them.

    Raises:
        TLToolsError: A budget variable is set to something that is not a number >= 0.
    """
    budget = budget or Budget.from_env()
    now = time.time() if now is None else now
    home = Path(home) if home is not None else paths.home_dir()
    cache = Path(cache) if cache is not None else paths.cache_dir()
    datasets_root = (home / "datasets").resolve()
    report = CleanReport(dry_run=dry_run, budget=budget)

    items = _scan_datasets(datasets_root) + _scan_cache(cache)
    leases, dead_leases = _lease_holders(datasets_root)
    running = _running_runs_by_folder(home / "runs", datasets_root)
    running.update(_version_originals(datasets_root))

    for path in dead_leases:
        _remove(_Item(DATASETS, "lease", path, (), 0, 0.0), "its process has ended", report)
    for item in items:
        if item.kind == "partial" and now - item.last_used > GRACE_SECONDS:
            _remove(item, "left over from an interrupted write, untouched for over an hour", report)

    for area, max_bytes in ((DATASETS, budget.datasets_max_bytes), (CACHE, budget.cache_max_bytes)):
        candidates = sorted((item for item in items if item.area == area and item.kind != "partial"),
                            key=lambda item: item.last_used)
        total = before = sum(item.bytes for item in candidates)
        for item in candidates:
            unused_days = (now - item.last_used) / DAY_SECONDS
            too_old = unused_days > budget.max_age_days
            over = total > max_bytes
            if not (too_old or over):
                break  # the rest were used more recently, and the area is within its budget
            in_use = _in_use(item, leases, running, now)
            if in_use:
                report.kept.append(Removal(item.path, item.kind, item.bytes, in_use))
                continue
            reason = (f"unused for {unused_days:.0f} days (limit {budget.max_age_days:g})" if too_old else
                      f"the {area} area holds {format_bytes(total)}, over its {format_bytes(max_bytes)} budget; "
                      "least recently used first")
            if _remove(item, reason, report, datasets_root=datasets_root):
                total -= item.bytes
        report.areas[area] = {"bytes_before": before, "bytes_after": total, "max_bytes": max_bytes}
    return report


def _in_use(item: _Item, leases: dict[str, list[int]], running: dict[str, str], now: float) -> str | None:
    """Return why ``item`` must stay, or None."""
    if item.kind == "dataset":
        if item.path.name in leases:
            return f"in use: leased by process {', '.join(map(str, leases[item.path.name]))}"
        if item.path.name in running:
            return f"in use: {running[item.path.name]}"
    if now - item.last_used < GRACE_SECONDS:
        return "in use: used within the last hour"
    return None


def _remove(item: _Item, reason: str, report: CleanReport, *, datasets_root: Path | None = None) -> bool:
    """Delete ``item`` (unless a dry run) and record it; return whether it is gone (or would be)."""
    if report.dry_run:
        report.removed.append(Removal(item.path, item.kind, item.bytes, reason))
        return True
    try:
        if item.kind == "dataset":
            if datasets_root is not None and item.path.name in _lease_holders(datasets_root)[0]:  # leased since the scan
                report.kept.append(Removal(item.path, item.kind, item.bytes, "in use: leased while cleaning"))
                return False
            # Renamed away first: a loader never sees half a dataset under its real name.
            trash = item.path.with_name(f".{item.path.name}.deleting-{os.getpid()}")
            os.rename(item.path, trash)
            for companion in item.companions:
                companion.unlink(missing_ok=True)
            shutil.rmtree(trash)
        else:
            for path in (*item.companions, item.path):  # a description goes before its data
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
    except OSError as error:
        report.errors.append(f"could not delete {item.path}: {error.strerror or error}")
        _logger.warning("housekeeping could not delete %s: %s", item.path, error)
        return False
    report.removed.append(Removal(item.path, item.kind, item.bytes, reason))
    return True


def _scan_datasets(root: Path) -> list[_Item]:
    """Return the extracted datasets and the partial leftovers in the datasets folder."""
    if not root.is_dir():
        return []
    from tltools.data.sample import FOLDER_NAME as SAMPLE  # not at the top: tltools.data imports this module

    def own(name: str) -> bool:
        return bool(_EXTRACTED.match(name)) or name == SAMPLE

    items = []
    names = {path.name for path in root.iterdir()}
    for path in root.iterdir():
        name = path.name
        try:
            if _LEASE.match(name):
                continue
            if name.startswith(".") and (own(name[1:].split(".")[0]) or name[1:].startswith(f"{SAMPLE}-")):
                # staging folders (.<target>.xxxx, .sample-digits-xxxx), temporary manifests, trash
                items.append(_Item(DATASETS, "partial", path, (), _size(path), _newest_mtime(path)))
            elif not own(name.removesuffix(".json")):
                continue  # the user's own file or folder
            elif path.is_dir() and not path.is_symlink():
                manifest = root / f"{name}.json"
                companions = (manifest,) if f"{name}.json" in names else ()
                stamps = [path.stat().st_mtime, *(companion.stat().st_mtime for companion in companions)]
                size = _size(path) + sum(companion.stat().st_size for companion in companions)
                items.append(_Item(DATASETS, "dataset", path, companions, size, max(stamps)))
            elif name.endswith(".json") and name[:-5] not in names:  # a manifest whose folder is gone
                items.append(_Item(DATASETS, "partial", path, (), _size(path), path.stat().st_mtime))
        except OSError:  # vanished while looking (another cleaner, a loader): skip it
            continue
    return items


def _scan_cache(cache: Path) -> list[_Item]:
    """Return the feature-cache entries, decoded-image caches and partial leftovers under ``cache``."""
    items = []
    features, decoded = cache / "features", cache / "decoded"
    if features.is_dir():
        names = {path.name for path in features.iterdir()}
        for path in features.iterdir():
            name = path.name
            try:
                if name.startswith("."):
                    items.append(_Item(CACHE, "partial", path, (), _size(path), _newest_mtime(path)))
                elif name.endswith(".npy") and f"{name[:-4]}.json" in names:
                    description = features / f"{name[:-4]}.json"
                    size = path.stat().st_size + description.stat().st_size
                    items.append(_Item(CACHE, "features", path, (description,), size, description.stat().st_mtime))
                elif (name.endswith(".npy") and f"{name[:-4]}.json" not in names) or (
                        name.endswith(".json") and f"{name[:-5]}.npy" not in names):
                    # Half an entry (never a cache hit): an interrupted write, or the other half was deleted.
                    items.append(_Item(CACHE, "partial", path, (), path.stat().st_size, path.stat().st_mtime))
            except OSError:
                continue
    health = cache / "health"  # tltools.health.task.REPORTS_FOLDER (not imported: it loads the whole analysis)
    if health.is_dir():
        for path in health.iterdir():
            try:
                if path.name.startswith("."):
                    items.append(_Item(CACHE, "partial", path, (), _size(path), _newest_mtime(path)))
                elif path.name.endswith(".pkl") and path.is_file():
                    stat = path.stat()
                    items.append(_Item(CACHE, "health", path, (), stat.st_size, stat.st_mtime))
            except OSError:
                continue
    if decoded.is_dir():
        for path in decoded.iterdir():
            try:
                if path.name.startswith("."):
                    items.append(_Item(CACHE, "partial", path, (), _size(path), _newest_mtime(path)))
                elif path.name.endswith(".npy") and path.is_file():
                    stat = path.stat()
                    items.append(_Item(CACHE, "decoded", path, (), stat.st_size, stat.st_mtime))
            except OSError:
                continue
    return items


def _running_runs_by_folder(runs_root: Path, datasets_root: Path) -> dict[str, str]:
    """Return {extracted folder name: run id} for runs still running in a live process."""
    found: dict[str, str] = {}
    if not runs_root.is_dir():
        return found
    for folder in runs_root.iterdir():
        try:
            state = fileio.read_json(folder / "status.json")
            if state.get("status") != runs.RUNNING or not runs.owner_alive(state):
                continue
            root = Path(fileio.read_json(folder / "dataset.json")["root"]).resolve()
            relative = root.relative_to(datasets_root)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a run, not running, not reading an extracted dataset, or unreadable
        if relative.parts:
            found[relative.parts[0]] = f"read by the running run {folder.name}"
    return found


def _version_originals(datasets_root: Path) -> dict[str, str]:
    """Return {extracted folder name: why it stays} for the uploads that saved dataset versions are built on.

    A version (:mod:`tltools.health.versions`) holds only a changes CSV; its images are the original's, so
    the original must outlive it. Versions in the datasets folder are found (where the Data health page saves
    them); one written elsewhere with ``health --apply … --out DIR`` is not known here.
    """
    from tltools.health.versions import VERSION_FILE  # not at the top: tltools.data imports this module

    found: dict[str, str] = {}
    if not datasets_root.is_dir():
        return found
    for folder in datasets_root.iterdir():
        try:
            original = Path(fileio.read_json(folder / VERSION_FILE)["original"]).resolve()
            relative = original.relative_to(datasets_root)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a version, unreadable, or built on a folder outside the datasets folder
        if relative.parts:
            found.setdefault(relative.parts[0], f"the original images of the saved dataset version {folder.name}")
    return found


def _size(path: Path) -> int:
    """Return the bytes of a file, or of every file under a folder (links not followed)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _newest_mtime(path: Path) -> float:
    """Return the latest modification time of ``path`` or anything under it (a staging folder still being filled)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, folders, files in os.walk(path):
            for name in (*folders, *files):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


# --- automatic runs ----------------------------------------------------------------------------------------------

_auto_lock = threading.Lock()
_last_attempt: dict[Path, float] = {}


def maybe_clean(*, interval: float = AUTO_INTERVAL_SECONDS) -> threading.Thread | None:
    """Start :func:`clean` on a background thread unless it ran less than ``interval`` seconds ago.

    The last run's time is kept in ``cache_dir()/"housekeeping.json"``, shared by every
    process using that cache. Cheap when not due (one ``stat``). Never raises: a
    budget variable that is not a number, an unwritable cache or a failure while
    cleaning is logged as a warning and otherwise ignored.

    Args:
        interval: Least seconds between two automatic runs.

    Returns:
        The started thread (``join()`` it to wait), or None when not due or not possible.
    """
    try:
        home, cache = paths.home_dir(), paths.cache_dir()
        stamp = cache / STAMP_FILE
        with _auto_lock:
            now = time.time()
            if now - _last_attempt.get(cache, -interval - 1) < interval:
                return None
            _last_attempt[cache] = now
            with contextlib.suppress(FileNotFoundError):
                if now - stamp.stat().st_mtime < interval:
                    return None
            budget = Budget.from_env()
            fileio.write_json(stamp, {"started": datetime.datetime.now().isoformat(timespec="seconds"),
                                      "pid": os.getpid()})
    except Exception as error:  # never stop the caller (the dataset loader) for housekeeping
        _logger.warning("automatic cleanup skipped: %s", error)
        return None
    thread = threading.Thread(target=_clean_quietly, args=(budget, home, cache), name="tltools-housekeeping",
                              daemon=True)
    thread.start()
    return thread


def _clean_quietly(budget: Budget, home: Path, cache: Path) -> None:
    try:
        report = clean(budget, home=home, cache=cache)
    except Exception:
        _logger.warning("automatic cleanup failed", exc_info=True)
        return
    if report.removed:
        _logger.info("automatic cleanup freed %s (%d items)", format_bytes(report.freed_bytes), len(report.removed))
