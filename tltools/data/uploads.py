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
