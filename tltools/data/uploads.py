"""Datasets uploaded earlier: archives already extracted into the datasets folder."""

import dataclasses
import datetime
import json
from pathlib import Path

from tltools import paths


@dataclasses.dataclass(frozen=True)
class UploadedDataset:
    """An extracted archive that :func:`tltools.data.load_dataset` can load again without re-uploading.

    Attributes:
        source: The archive's original file name.
        folder: Where it was extracted.
        extracted_at: When it was extracted (local time).
    """

    source: str
    folder: Path
    extracted_at: datetime.datetime


def list_uploaded_datasets() -> list[UploadedDataset]:
    """Return the completely extracted uploads, newest first (incomplete ones have no manifest)."""
    found = []
    for manifest in paths.datasets_dir().glob("*.json"):
        folder = manifest.with_suffix("")
        if not folder.is_dir():
            continue
        try:
            source = json.loads(manifest.read_text())["source"]
        except (OSError, ValueError, KeyError):
            continue
        when = datetime.datetime.fromtimestamp(manifest.stat().st_mtime)
        found.append(UploadedDataset(source, folder, when))
    return sorted(found, key=lambda item: item.extracted_at, reverse=True)


def display_name(source: str, root: Path | str) -> str:
    """Return the name a person knows a dataset by, never a server path where a better name exists.

    Args:
        source: The dataset's ``source`` (an uploaded file's name, or the folder it was read from).
        root: The dataset's folder (an extracted upload, a folder inside one, or any folder).

    Returns:
        The uploaded archive's name (``flowers12.zip``) for an extracted upload or a folder
        inside one, "sample digits" for the built-in sample, else the folder's own name.
    """
    from tltools.data.sample import FOLDER_NAME

    uploads = paths.datasets_dir().resolve()
    folder = Path(root).resolve()
    for candidate in (folder, *folder.parents):
        if candidate.parent != uploads:
            continue
        if candidate.name == FOLDER_NAME:
            return "sample digits"
        try:
            return str(json.loads(candidate.with_name(candidate.name + ".json").read_text())["source"])
        except (OSError, ValueError, KeyError, TypeError):
            break
    return Path(source).name if ("/" in source or "\\" in source) else source
