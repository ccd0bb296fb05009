"""Atomic file writes: a reader (or a crash) never sees half a file.

Each writer writes a temporary file in the destination folder and renames it
over the destination with ``os.replace``, which is atomic on POSIX and Windows.
"""

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Args:
        path: The final destination.
        suffix: Ending of the temporary name (some writers pick a format by
            extension, e.g. ``.keras``); defaults to ``path``'s own suffix.

    The temporary file is removed when the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# The disk refusing a write: full, over quota, read-only, or not permitted.
DISK_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EACCES, errno.EPERM)
    if code is not None
)


def is_disk_error(error: BaseException) -> bool:
    """Return whether ``error`` is the disk refusing a write (see :data:`DISK_ERRNOS`)."""
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def disk_error_message(error: OSError, where: Path | str | None = None, *, variable: str = "TLTOOLS_HOME") -> str:
    """Return one line saying which write the disk refused, why, and what to do.

    Args:
        error: An error for which :func:`is_disk_error` holds.
        where: The file or folder being written; defaults to the file the error names.
        variable: The environment variable that moves that folder elsewhere
            (``TLTOOLS_HOME`` or ``TLTOOLS_CACHE``).

    Returns:
        E.g. ``"cannot write runs/x/model.keras: the disk is full (No space left on device);
        free disk space or set TLTOOLS_HOME to a folder on a disk with room"``.
    """
    where = where or error.filename or "the file"
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None)):
        problem, remedy = "the disk is full", f"free disk space or set {variable} to a folder on a disk with room"
    elif error.errno == errno.EROFS:
        problem, remedy = "the disk is read-only", f"set {variable} to a folder on a writable disk"
    else:
        problem, remedy = "permission denied", f"make it writable or set {variable} to a folder you can write to"
    return f"cannot write {where}: {problem} ({reason}); {remedy}"


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: Path | str, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def read_json(path: Path | str):
    """Return the JSON content of ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _jsonable(value):
    """Turn numpy scalars and arrays and paths into JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def format_bytes(count: float) -> str:
    """Return ``count`` bytes as a short human string, e.g. ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover - the loop always returns
