"""Recognising how a folder of images is organised, without being told.

Three layouts are understood, each possibly wrapped in single top folders
(what zipping a folder produces), which are descended automatically:

* ``folder-per-class``: ``<class>/<image>`` (images may sit in sub-folders of
  the class folder), as Keras' ``image_dataset_from_directory`` reads.
* ``pre-split``: top folders ``train/``, ``val/`` (or ``valid/``,
  ``validation/``) and ``test/``, each with class folders.
* ``csv-labels``: images plus one ``.csv`` with a file-name column and a label
  column, both found by their content (see :mod:`tltools.data.csv_labels`).

:func:`scan_layout` only looks at names; images are opened later, by
:mod:`tltools.data.ingest`.
"""

import dataclasses
import os
from pathlib import Path, PurePosixPath

from tltools.data.archive import Skipped
from tltools.data.images import is_image_name
from tltools.errors import TLToolsError

FOLDER_PER_CLASS = "folder-per-class"
PRE_SPLIT = "pre-split"
CSV_LABELS = "csv-labels"

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
_SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini", "icon\r"}
# Files that describe a dataset (README.txt, LICENSE, SOURCE.txt); outside class folders they are
# listed as documentation rather than skipped.
_DOC_EXTENSIONS = {".txt", ".md", ".rst", ".pdf", ".html", ".htm", ".json", ".yaml", ".yml"}
_DOC_NAMES = {"readme", "license", "licence", "source", "citation", "notice", "authors", "copying"}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An image file the layout assigns a label (and maybe a split) to.

    Attributes:
        relpath: Path relative to the dataset root, "/" separated.
        label: The class name.
        split: ``"train"``, ``"val"`` or ``"test"`` when the input fixes it, else None.
    """

    relpath: str
    label: str
    split: str | None = None


@dataclasses.dataclass
class LayoutScan:
    """What :func:`scan_layout` found.

    Attributes:
        root: The folder the layout starts at (after descending wrapper folders).
        layout: One of ``folder-per-class``, ``pre-split``, ``csv-labels``.
        candidates: Image files with their labels, sorted by path.
        skipped: Files left out, with reasons (paths relative to the top folder).
        warnings: Things the user should know that did not stop the scan.
        documentation: Description files outside the class folders (README, LICENSE, ...),
            relative to the top folder; neither used nor counted as skipped.
    """

    root: Path
    layout: str
    candidates: list[Candidate]
    skipped: list[Skipped]
    warnings: list[str]
    documentation: list[str] = dataclasses.field(default_factory=list)


def junk_reason(relpath: str) -> str | None:
    """Return why ``relpath`` is operating-system clutter, or None when it is not.

    Clutter: ``__MACOSX/`` folders, ``._*`` resource forks, ``.DS_Store``,
    ``Thumbs.db``, ``desktop.ini``, hidden files and anything in a hidden folder.
    """
    parts = PurePosixPath(relpath).parts
    name = parts[-1]
    if "__MACOSX" in parts:
        return "macOS metadata (__MACOSX folder)"
    if name.startswith("._"):
        return "macOS resource fork (._ file)"
    if name.lower() in _SYSTEM_FILES:
        return f"operating-system file ({name})"
    if any(part.startswith(".") for part in parts[:-1]):
        return "inside a hidden folder"
    if name.startswith("."):
        return "hidden file"
    return None


def is_documentation(name: str) -> bool:
    """Return True for a file name that describes a dataset (README.md, LICENSE, SOURCE.txt, ...)."""
    stem, extension = os.path.splitext(name.lower())
    return extension in _DOC_EXTENSIONS or (not extension and stem in _DOC_NAMES)


def scan_layout(top: Path) -> LayoutScan:
    """Find the layout of the dataset in folder ``top`` and label its images.

    Args:
        top: An existing folder (an extracted archive or a user's directory).

    Returns:
        The layout, its labelled image candidates and the skipped files.

    Raises:
        TLToolsError: ``top`` is not a folder or holds no images in any layout.
    """
    top = Path(top)
    if not top.is_dir():
        raise TLToolsError(f"{top} is not a folder; give a .zip file or a folder of images")
    skipped: list[Skipped] = []
    files = []
    for relpath in _walk(top):
        reason = junk_reason(relpath)
        if reason:
            skipped.append(Skipped(relpath, reason))
        else:
            files.append(relpath)
    prefix, documentation = _descend(files)
    root = top.joinpath(*PurePosixPath(prefix).parts) if prefix else top
    inner = [path[len(prefix) :] for path in files if path.startswith(prefix) and path not in documentation]
    scan = _classify(root, inner)
    scan.skipped = skipped + [Skipped(prefix + item.path, item.reason) for item in scan.skipped]
    scan.documentation = documentation
    return scan


def _walk(top: Path) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(top, followlinks=False):
        dirs.sort()
        relative = Path(folder).relative_to(top).as_posix()
        for name in sorted(names):
            found.append(name if relative == "." else f"{relative}/{name}")
    return found


def _descend(files: list[str]) -> tuple[str, list[str]]:
    """Find the "a/b/" prefix of single folders that wrap the data, and the documentation files.

    At the top and in each wrapper folder, description files (README.txt, ...)
    do not stop the descent; they are returned as documentation. A single
    folder of plain images is not descended into: it is a (lone) class folder;
    nor is a lone ``train/``: it is a pre-split input whose val split is carved.
    """
    prefix, documentation = "", []
    while True:
        level = [path[len(prefix) :] for path in files if path.startswith(prefix)]
        here = [name for name in level if "/" not in name]
        docs = [name for name in here if is_documentation(name)]
        folders = {name.split("/", 1)[0] for name in level if "/" in name}
        folder = next(iter(folders), "")
        if (len(folders) != 1 or len(here) != len(docs) or _looks_like_one_class(level, folder)
                or SPLIT_ALIASES.get(folder.lower()) == "train"):
            documentation += [prefix + name for name in docs]
            return prefix, documentation
        documentation += [prefix + name for name in docs]
        prefix += folders.pop() + "/"


def _looks_like_one_class(level: list[str], folder: str) -> bool:
    """True when the only folder holds images and no sub-folder or CSV: a lone class, not a wrapper."""
    inside = [name[len(folder) + 1 :] for name in level if name.startswith(folder + "/")]
    return all("/" not in name and not name.lower().endswith(".csv") for name in inside)


def _classify(root: Path, files: list[str]) -> LayoutScan:
    top_dirs = {path.split("/", 1)[0] for path in files if "/" in path}
    top_files = [path for path in files if "/" not in path]
    split_dirs = {name for name in top_dirs if name.lower() in SPLIT_ALIASES}
    if any(SPLIT_ALIASES[name.lower()] == "train" for name in split_dirs):
        return _pre_split(root, files, split_dirs)
    csv_files = [path for path in top_files if path.lower().endswith(".csv")]
    if csv_files:
        from tltools.data.csv_labels import scan_csv_labels

        scan = scan_csv_labels(root, files, csv_files)
        if scan is not None:
            return scan
    return _folder_per_class(root, files)


def _folder_per_class(root: Path, files: list[str]) -> LayoutScan:
    candidates, skipped = [], []
    for path in files:
        if not is_image_name(path):
            skipped.append(_not_an_image(path))
        elif "/" not in path:
            skipped.append(Skipped(path, "not inside a class folder"))
        else:
            candidates.append(Candidate(path, path.split("/", 1)[0]))
    if not candidates:
        raise TLToolsError(
            "no images found: expected class folders of images (cat/1.jpg), train/ val/ test/ "
            "split folders, or images with a labels .csv"
        )
    return LayoutScan(root, FOLDER_PER_CLASS, candidates, skipped, [])


def _pre_split(root: Path, files: list[str], split_dirs: set[str]) -> LayoutScan:
    candidates, skipped, warnings = [], [], []
    for path in files:
        parts = path.split("/")
        if parts[0] not in split_dirs:
            reason = "not inside a split folder (train/, val/, test/)"
            skipped.append(Skipped(path, reason))
        elif not is_image_name(path):
            skipped.append(_not_an_image(path))
        elif len(parts) < 3:
            skipped.append(Skipped(path, f"not inside a class folder of {parts[0]}/"))
        else:
            candidates.append(Candidate(path, parts[1], SPLIT_ALIASES[parts[0].lower()]))
    splits = [SPLIT_ALIASES[name.lower()] for name in split_dirs]
    if len(splits) != len(set(splits)):
        raise TLToolsError(
            f"split folders {sorted(split_dirs)} name the same split twice; keep one of each"
        )
    train_classes = {c.label for c in candidates if c.split == "train"}
    orphans = sorted({c.label for c in candidates} - train_classes)
    if orphans:
        warnings.append(f"classes with no training images were left out: {', '.join(orphans)}")
    kept = []
    for candidate in candidates:
        if candidate.label in train_classes:
            kept.append(candidate)
        else:
            skipped.append(Skipped(candidate.relpath, f"class {candidate.label!r} has no training images"))
    for split in sorted({c.split for c in kept} - {"train"}):
        missing = sorted(train_classes - {c.label for c in kept if c.split == split})
        if missing:
            warnings.append(f"the {split} split has no images of: {', '.join(missing)}")
    if not kept:
        raise TLToolsError("no images found in the train/ folder's class folders (train/<class>/<image>)")
    return LayoutScan(root, PRE_SPLIT, kept, skipped, warnings)


def _not_an_image(path: str) -> Skipped:
    extension = os.path.splitext(path)[1].lower() or "no extension"
    return Skipped(path, f"not an image file ({extension})")
