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
import re
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
# Archives inside the upload are never expanded (a nested zip is the classic way to multiply a zip bomb).
_ARCHIVE_EXTENSIONS = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}
# Line breaks and other control characters: a class name holding one would break labels.txt (one name a line).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NO_IMAGES_HINT = ("expected class folders of images (cat/1.jpg), train/ val/ test/ split folders, "
                  "or images with a labels .csv")


class NoImagesError(TLToolsError):
    """No usable images in ``where``; the message names the first few files skipped instead.

    Attributes:
        where: The folder or archive, as shown to the user.
        skipped: Everything that was left out, with reasons.
        hint: What the user should do.

    :func:`tltools.data.load_dataset` catches it to add the entries that the
    archive extraction skipped, and raises it again.
    """

    def __init__(self, where: str, skipped: list["Skipped"], hint: str = ""):
        self.where, self.skipped, self.hint = where, list(skipped), hint or NO_IMAGES_HINT
        super().__init__(no_images_message(f"no images found in {where}", self.skipped, self.hint))


def no_images_message(what: str, skipped: list[Skipped], hint: str = NO_IMAGES_HINT, reasons: int = 3) -> str:
    """Return a one-line "no images" message naming the skipped files, grouped by reason.

    E.g. ``"no images found in pets.zip: 6 file(s) skipped: cat/0.png, cat/1.png and 4 more
    (encrypted: ...); expected class folders ..."``.

    Args:
        what: The start of the message, e.g. ``"no images found in pets.zip"``.
        skipped: Everything left out, in order; operating-system clutter is named last.
        hint: What the user should do; appended at the end.
        reasons: How many different reasons to name.

    Returns:
        The message, without line breaks.
    """
    if not skipped:
        return f"{what}: the archive or folder holds no files; {hint}"
    groups: dict[str, list[str]] = {}
    for item in sorted(skipped, key=lambda item: junk_reason(item.path) is not None):  # stable: clutter last
        groups.setdefault(item.reason, []).append(item.path)
    parts = []
    for reason, paths in list(groups.items())[:reasons]:
        named = ", ".join(paths[:2]) + (f" and {len(paths) - 2} more" if len(paths) > 2 else "")
        parts.append(f"{named} ({reason})")
    rest = sum(len(paths) for paths in list(groups.values())[reasons:])
    if rest:
        parts.append(f"{rest} more for other reasons")
    message = f"{what}: {len(skipped)} file(s) skipped: {'; '.join(parts)}; {hint}"
    return CONTROL_CHARACTERS.sub(" ", message)


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


def name_reason(relpath: str) -> str | None:
    """Return why ``relpath``'s name cannot be used (a line break or control character), or None."""
    if CONTROL_CHARACTERS.search(relpath):
        return "the name contains a line break or control character; rename it"
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
        TLToolsError: ``top`` is not a folder, or its layout is contradictory.
        NoImagesError: ``top`` holds no images in any layout (a :class:`TLToolsError`).
    """
    top = Path(top)
    if not top.is_dir():
        raise TLToolsError(f"{top} is not a folder; give a .zip file or a folder of images")
    skipped: list[Skipped] = []
    files = []
    for relpath in _walk(top):
        reason = junk_reason(relpath) or name_reason(relpath)
        if reason:
            skipped.append(Skipped(relpath, reason))
        else:
            files.append(relpath)
    prefix, documentation = _descend(files)
    root = top.joinpath(*PurePosixPath(prefix).parts) if prefix else top
    inner = [path[len(prefix) :] for path in files if path.startswith(prefix) and path not in documentation]
    try:
        scan = _classify(root, inner)
    except NoImagesError as error:
        everything = skipped + [Skipped(prefix + item.path, item.reason) for item in error.skipped]
        raise NoImagesError(str(top), everything, error.hint) from None
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
        if "/" not in path and path.lower().endswith(".csv"):
            skipped.append(Skipped(path, "CSV file not used: none of its columns names the images"))
        elif not is_image_name(path):
            skipped.append(not_an_image(path))
        elif "/" not in path:
            skipped.append(Skipped(path, "not inside a class folder"))
        else:
            candidates.append(Candidate(path, path.split("/", 1)[0]))
    if not candidates:
        raise NoImagesError(str(root), skipped)
    return LayoutScan(root, FOLDER_PER_CLASS, candidates, skipped, [])


def _pre_split(root: Path, files: list[str], split_dirs: set[str]) -> LayoutScan:
    candidates, skipped, warnings = [], [], []
    for path in files:
        parts = path.split("/")
        if parts[0] not in split_dirs:
            reason = "not inside a split folder (train/, val/, test/)"
            skipped.append(Skipped(path, reason))
        elif not is_image_name(path):
            skipped.append(not_an_image(path))
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
        raise NoImagesError(str(root), skipped, "expected images in class folders of train/ (train/<class>/<image>)")
    return LayoutScan(root, PRE_SPLIT, kept, skipped, warnings)


def not_an_image(path: str) -> Skipped:
    """Return the skip record of a file that is not an image (nested archives say they are not expanded)."""
    extension = os.path.splitext(path)[1].lower()
    if extension in _ARCHIVE_EXTENSIONS:
        return Skipped(path, f"nested archive ({extension}): archives inside the upload are not expanded; "
                             "extract it and add its images to the upload instead")
    return Skipped(path, f"not an image file ({extension or 'no extension'})")
