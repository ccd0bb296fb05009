"""Checks shared by the hostile-input tests: what a load wrote, and whether its report accounts for every entry."""

import io
import os
import re
import zipfile
from pathlib import Path

from tltools import paths

LABELS_FROM = re.compile(r"labels read from (.+?): file names in column")


def tree(folder: Path) -> set[Path]:
    """Return every file, folder and link below ``folder``, without following links."""
    found = set()
    for parent, dirs, names in os.walk(folder, followlinks=False):
        found.update(Path(parent) / name for name in dirs + names)
    return found


def written_outside(before: set[Path], after: set[Path], archive: bytes | None = None) -> list[str]:
    """Return the new paths (in ``after``, not in ``before``) that a load had no business writing.

    A load may write below the datasets folder, and its own bookkeeping in the cache
    folder (both app folders); a file in the cache named like an archive entry is a
    leak all the same.
    """
    datasets, cache = paths.datasets_dir(), paths.cache_dir()
    entry_names = set()
    if archive is not None:
        try:
            names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
            entry_names = {Path(name.replace("\\", "/")).name for name in names}
        except zipfile.BadZipFile:
            pass
    return sorted(
        str(path) for path in after - before
        if not path.is_relative_to(datasets) and not (path.is_relative_to(cache) and path.name not in entry_names)
    )


def leftovers(datasets: Path) -> list[str]:
    """Return staging folders and temporary files a load left in the datasets folder."""
    if not datasets.exists():
        return []
    return sorted(path.name for path in datasets.iterdir() if path.name.startswith(".") or path.suffix == ".tmp")


def extraction_folder(dataset) -> Path:
    """Return the folder an uploaded archive was extracted into (``dataset.root`` or one of its parents)."""
    datasets = paths.datasets_dir().resolve()
    return datasets / Path(dataset.root).resolve().relative_to(datasets).parts[0]


def unaccounted(archive: bytes, dataset) -> list[str]:
    """Return the archive's file entries the dataset neither uses, skips (with a reason) nor lists as documentation.

    The labels CSV of a ``csv-labels`` dataset counts as used: a warning names it.

    Args:
        archive: The uploaded zip's bytes.
        dataset: What :func:`tltools.data.load_dataset` made of it.

    Returns:
        Entry names, as stored in the archive; empty when the report is complete.
    """
    top = extraction_folder(dataset)
    prefix = Path(dataset.root).resolve().relative_to(top).as_posix()
    used = {relpath if prefix == "." else f"{prefix}/{relpath}" for relpath in dataset.items["relpath"]}
    labels_files = {f"{prefix}/{match[1]}" if prefix != "." else match[1]
                    for match in map(LABELS_FROM.match, dataset.warnings) if match}
    skipped = {item.path for item in dataset.skipped if item.reason.strip()}
    known = used | labels_files | set(dataset.documentation) | skipped
    missing = []
    for entry in zipfile.ZipFile(io.BytesIO(archive)).infolist():
        raw = entry.filename.replace("\\", "/")
        if raw.endswith("/"):
            continue  # folders are not files of the dataset
        normalised = "/".join(part for part in raw.split("/") if part not in ("", "."))
        if raw not in known and normalised not in known:
            missing.append(entry.filename)
    return missing
