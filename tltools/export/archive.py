"""The files every export shares: ``labels.txt`` and zip archives of a folder."""

import zipfile
from collections.abc import Sequence
from pathlib import Path

LABELS_FILE = "labels.txt"


def labels_text(class_names: Sequence[str]) -> str:
    """Return ``labels.txt``: one class name per line, in the model's output order."""
    return "".join(f"{name}\n" for name in class_names)


def zip_folder(folder: Path, path: Path) -> None:
    """Write every file below ``folder`` into the zip ``path``, named relative to ``folder``.

    Members are sorted so the same folder always gives the same member order.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(item for item in Path(folder).rglob("*") if item.is_file()):
            archive.write(file, file.relative_to(folder).as_posix())
