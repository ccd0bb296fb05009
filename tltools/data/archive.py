"""Safe extraction of an untrusted ``.zip`` archive.

A user's upload is hostile until proven otherwise. :func:`extract_zip`

* refuses the whole archive when its headers or its actual content mark a zip
  bomb (too many entries, too large in total, an entry compressed too well);
* skips, and reports, entries that would land outside the target folder
  (``../``, absolute paths, drive letters), symbolic links, names the file
  system cannot hold (over ``NAME_MAX`` / ``PATH_MAX`` bytes) and entries that
  clash with another one (a file and a folder of the same name, or names that
  differ only in letter case on a case-insensitive file system);
* never overwrites a file it has written, and never writes through a link;
* streams every entry to disk in chunks, never holding the archive's contents
  in memory, and counts the bytes really written rather than trusting headers;
* extracts into a temporary sibling folder that is renamed into place only when
  complete, and removed on any failure, so no half-extracted folder is left.
"""

import dataclasses
import errno
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tltools import fileio
from tltools.errors import TLToolsError
from tltools.limits import Limits, default_limits

CHUNK_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file left out of a dataset, and why.

    Attributes:
        path: The file's path inside the archive or dataset folder ("/" separated).
        reason: One short sentence a user understands.
    """

    path: str
    reason: str


def open_zip(source) -> zipfile.ZipFile:
    """Open ``source`` (a path, ``bytes`` or binary file object) as a zip archive.

    Errors name a path, or a file object's ``name`` (an upload's file name).

    Raises:
        TLToolsError: The file is missing, empty, truncated or not a zip archive.
    """
    name = str(source) if isinstance(source, (str, Path)) else str(getattr(source, "name", "") or "the uploaded file")
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        return zipfile.ZipFile(source)
    except FileNotFoundError:
        raise TLToolsError(f"archive not found: {name}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise TLToolsError(
            f"{name} is not a readable zip archive ({error}); upload a .zip made by a zip tool"
        ) from None


def extract_zip(source, target: Path, *, limits: Limits | None = None) -> list[Skipped]:
    """Extract a zip archive into ``target``, which must not exist yet.

    Args:
        source: A path, ``bytes`` or binary file object holding the archive.
        target: The folder to create; its parent is created when missing.
        limits: Zip-bomb limits; defaults to :func:`tltools.limits.default_limits`.

    Returns:
        The entries that were not extracted, with the reason for each.

    Raises:
        TLToolsError: The archive is unreadable, exceeds a limit, or the disk
            refuses the write. Nothing is left at ``target`` in that case.
    """
    limits = limits or default_limits()
    target = Path(target)
    with open_zip(source) as archive:
        entries = archive.infolist()
        _check_headers(entries, limits)
        staging = _make_staging(target)
        try:
            skipped = _extract_entries(archive, entries, staging, limits)
            _publish(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return skipped


def _make_staging(target: Path) -> Path:
    """Create the hidden temporary sibling folder that the archive is extracted into first."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as error:
        raise TLToolsError(
            f"cannot create a folder for the extracted dataset in {target.parent} ({error.strerror or error}); "
            "set TLTOOLS_HOME to a writable folder"
        ) from None


def _publish(staging: Path, target: Path) -> None:
    """Rename the complete extraction into place; when another process got there first, keep theirs."""
    try:
        os.replace(staging, target)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)  # the same archive content, extracted concurrently


def _check_headers(entries: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(entries) > limits.max_entries:
        raise TLToolsError(
            f"the archive has {len(entries)} entries, over the limit of {limits.max_entries} "
            "(possible zip bomb; raise TLTOOLS_MAX_ENTRIES if it is genuine)"
        )
    declared = sum(entry.file_size for entry in entries)
    if declared > limits.max_total_bytes:
        raise TLToolsError(
            f"the archive unpacks to {declared} bytes, over the limit of {limits.max_total_bytes} "
            "(possible zip bomb; raise TLTOOLS_MAX_TOTAL_BYTES if it is genuine)"
        )
    for entry in entries:
        _check_ratio(entry.filename, entry.file_size, entry.compress_size, limits)


def _check_ratio(name: str, size: int, compressed: int, limits: Limits) -> None:
    if size >= limits.ratio_min_bytes and size > limits.max_ratio * max(compressed, 1):
        raise TLToolsError(
            f"entry {name!r} expands {size / max(compressed, 1):.0f}x, over the limit of "
            f"{limits.max_ratio:.0f}x (possible zip bomb; raise TLTOOLS_MAX_RATIO if it is genuine)"
        )


def _extract_entries(archive, entries, staging: Path, limits: Limits) -> list[Skipped]:
    skipped: list[Skipped] = []
    seen: set[str] = set()
    written_total = 0
    inside = staging.resolve()
    name_max = _pathconf(staging, "PC_NAME_MAX", 255)
    path_max = _pathconf(staging, "PC_PATH_MAX", 4096)
    for entry in entries:
        name = entry.filename.replace("\\", "/")
        problem = _unsafe_reason(name, entry)
        if problem:
            skipped.append(Skipped(name, problem))
            continue
        relative = PurePosixPath(*[part for part in PurePosixPath(name).parts if part not in ("", ".")])
        if entry.is_dir() or not relative.parts:
            continue
        problem = _unreadable_reason(entry)
        if problem:
            skipped.append(Skipped(name, problem))
            continue
        if str(relative) in seen:
            skipped.append(Skipped(name, "duplicate entry in the archive; the first one was kept"))
            continue
        seen.add(str(relative))
        destination = staging.joinpath(*relative.parts)
        problem = _too_long_reason(relative, destination, name_max, path_max) or _clash_reason(staging, relative)
        if problem:
            skipped.append(Skipped(name, problem))
            continue
        if not destination.resolve().is_relative_to(inside):
            skipped.append(Skipped(name, "unsafe path: it would extract outside the dataset folder"))
            continue
        try:
            written_total += _copy_entry(archive, entry, destination, written_total, limits)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:
            destination.unlink(missing_ok=True)
            skipped.append(Skipped(name, f"damaged inside the archive ({error})"))
        except OSError as error:
            if fileio.is_disk_error(error):
                raise TLToolsError(fileio.disk_error_message(error, staging.parent)) from None
            skipped.append(Skipped(name, _write_failure_reason(error)))
    return skipped


def _pathconf(folder: Path, name: str, default: int) -> int:
    """Return the file system's ``os.pathconf`` value ``name`` for ``folder``, or ``default``."""
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):  # not every platform or file system reports it
        return default


def _too_long_reason(relative: PurePosixPath, destination: Path, name_max: int, path_max: int) -> str | None:
    """Say why the file system cannot hold this name (checked before writing, not left to an OSError)."""
    for part in relative.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            shown = part if len(part) <= 40 else part[:37] + "..."
            return (f"name too long for the file system: {shown!r} is {size} bytes, the limit is {name_max} "
                    "bytes per file or folder name; shorten it")
    size = len(os.fsencode(str(destination)))
    if size >= path_max:
        return (f"path too long for the file system: it would be {size} bytes, the limit is {path_max}; "
                "use fewer or shorter folder names")
    return None


def _clash_reason(staging: Path, relative: PurePosixPath) -> str | None:
    """Say why ``relative`` cannot be written without replacing something already extracted."""
    folder = staging
    for part in relative.parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            where = folder.relative_to(staging).as_posix()
            return f"clashes with another entry: {where!r} is a file in the archive, not a folder"
    destination = folder / relative.parts[-1]
    if destination.is_dir() and not destination.is_symlink():
        return "clashes with another entry: a folder of the same name is in the archive"
    if destination.exists() or destination.is_symlink():
        return _CASE_CLASH
    return None


_CASE_CLASH = ("clashes with another entry whose name differs only in letter case; this file system "
               "treats them as one name, so the first one was kept")


def _write_failure_reason(error: OSError) -> str:
    """Return the skip reason for an entry whose write failed with ``error`` (not a disk-wide failure)."""
    if error.errno == errno.ENAMETOOLONG:
        return "name too long for the file system; shorten it"
    if error.errno == errno.EEXIST:
        return _CASE_CLASH
    if error.errno in (errno.ENOTDIR, errno.EISDIR):
        return "clashes with another entry: a file and a folder of the same name are in the archive"
    return f"could not be written ({error.strerror or error})"


def _unsafe_reason(name: str, entry: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(entry.external_attr >> 16):
        return "symbolic link: links are never extracted"
    if name.startswith("/") or _DRIVE.match(name):
        return "unsafe path: absolute paths are never extracted"
    if ".." in PurePosixPath(name).parts:
        return "unsafe path: '..' would extract outside the dataset folder"
    if "\x00" in name:
        return "unsafe path: the name contains a NUL character"
    return None


def _unreadable_reason(entry: zipfile.ZipInfo) -> str | None:
    # zipfile raises RuntimeError / NotImplementedError for these instead of reading them.
    if entry.flag_bits & 0x1:
        return "encrypted: password-protected entries are not extracted; zip the files again without a password"
    if entry.compress_type not in _READABLE_METHODS:
        return f"compressed with an unsupported method ({entry.compress_type}); zip it again with a standard zip tool"
    return None


def _copy_entry(archive, entry, destination: Path, written_before: int, limits: Limits) -> int:
    destination.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    # "x": never replace a file already extracted (on a case-insensitive file system
    # "Cat/1.jpg" and "cat/1.jpg" are one file) and never follow a link placed there.
    with archive.open(entry) as source, open(destination, "xb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written_before + written > limits.max_total_bytes:
                raise TLToolsError(
                    f"the archive unpacks to more than {limits.max_total_bytes} bytes "
                    "(possible zip bomb; raise TLTOOLS_MAX_TOTAL_BYTES if it is genuine)"
                )
            _check_ratio(entry.filename, written, entry.compress_size, limits)
            sink.write(chunk)
    return written
