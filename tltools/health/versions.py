"""Dataset versions: an original dataset plus a changes CSV, never a modified copy of the images.

Accepting a health finding never touches the uploaded files. A version is a
small folder holding ``tltools-version.json`` (which folder the original images
are in and its fingerprint) and ``changes.csv``, one row per reviewed image::

    path,old_label,new_label,action,reason
    roses/12.jpg,roses,tulips,relabel,likely label error (quality 0.03)
    tulips/7.jpg,tulips,,exclude,near duplicate of tulips/6.jpg across splits
    daisy/3.jpg,daisy,,keep,reviewed: outlier but correct

``relabel`` gives the image ``new_label``, ``exclude`` leaves it out, ``keep``
records that someone looked and changes nothing. :func:`tltools.data.load_dataset`
loads a version folder like any dataset (:func:`load_version`): the original's
images, each in its original split, with the changes applied; its ``version``
attribute names the folder, and a run trained on it records that folder as its
data (``dataset.json``), so evaluating or continuing the run loads the same
version again. A version made from a version keeps the first original and
merges the changes (a later row for the same image wins). The changes CSV can
be downloaded, edited and applied again to the original (:func:`read_changes`,
:func:`write_version`; ``python -m tltools health DATA --apply CHANGES.csv --out NEW_DIR``).
"""

import dataclasses
import datetime
import hashlib
import io
from pathlib import Path

import pandas as pd

from tltools import fileio, paths
from tltools.errors import TLToolsError

VERSION_FILE = "tltools-version.json"
CHANGES_FILE = "changes.csv"
COLUMNS = ["path", "old_label", "new_label", "action", "reason"]
ACTIONS = ("relabel", "exclude", "keep")


def is_version(folder) -> bool:
    """Return whether ``folder`` is a dataset version (holds ``tltools-version.json``)."""
    try:
        return (Path(folder) / VERSION_FILE).is_file()
    except (TypeError, OSError):
        return False


def read_changes(source) -> pd.DataFrame:
    """Read and check a changes CSV.

    Args:
        source: A path, ``bytes`` or a binary file object (an upload) with the CSV.

    Returns:
        The rows with the columns of :data:`COLUMNS` (strings; ``new_label`` and ``reason`` may be empty).

    Raises:
        TLToolsError: The file is unreadable, lacks a column, names an unknown action, relabels
            without a new label, or lists an image twice.
    """
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "the changes CSV")
    try:
        data = source if isinstance(source, (str, Path)) else io.BytesIO(
            source if isinstance(source, (bytes, bytearray)) else source.read())
        rows = pd.read_csv(data, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise TLToolsError(f"cannot read the changes CSV {name}: {error}; give the file the Data health page "
                           "or `python -m tltools health` wrote") from None
    missing = [column for column in COLUMNS[:4] if column not in rows.columns]
    if missing:
        raise TLToolsError(f"the changes CSV {name} lacks the column(s) {', '.join(missing)}; "
                           f"it needs {', '.join(COLUMNS)}")
    if "reason" not in rows.columns:
        rows["reason"] = ""
    rows = rows[COLUMNS].copy()
    for number, row in enumerate(rows.itertuples(), start=2):
        if row.action not in ACTIONS:
            raise TLToolsError(f"{name} line {number}: action {row.action!r} is not one of {', '.join(ACTIONS)}")
        if row.action == "relabel" and not row.new_label.strip():
            raise TLToolsError(f"{name} line {number}: relabel of {row.path} needs a new_label")
    twice = rows["path"][rows["path"].duplicated()]
    if len(twice):
        raise TLToolsError(f"{name} lists {twice.iloc[0]} more than once; keep one row per image")
    return rows


def merge_changes(earlier: pd.DataFrame, later: pd.DataFrame) -> pd.DataFrame:
    """Return ``earlier``'s rows updated by ``later``'s (a later row for the same image wins), in first-seen order."""
    merged = pd.concat([earlier[COLUMNS], later[COLUMNS]], ignore_index=True)
    return merged.drop_duplicates("path", keep="last").reset_index(drop=True)


def apply_changes(dataset, changes: pd.DataFrame, *, name: str | None = None):
    """Return ``dataset`` with ``changes`` applied: relabelled images get their new label, excluded ones are left out.

    Images keep their split; classes and label indices are recomputed from the labels left.

    Args:
        dataset: The original :class:`~tltools.data.Dataset` (as loaded, split).
        changes: Rows as :func:`read_changes` returns them.
        name: What the result's ``source`` says (default: the original's plus the number of changes).

    Raises:
        TLToolsError: A row names an image the dataset lacks, or an old label the image does not have;
            or the result has fewer than 2 classes or a class with a single image.
    """
    items = dataset.items.copy()
    position = pd.Series(items.index, index=items["relpath"])
    for row in changes.itertuples():
        if row.path not in position.index:
            raise TLToolsError(f"the changes name {row.path}, which is not an image of {dataset.source}; "
                               "apply them to the dataset they were made for")
        current = items.at[position[row.path], "label"]
        if row.old_label != current:
            raise TLToolsError(f"the changes say {row.path} is labelled {row.old_label!r} but it is {current!r} in "
                               f"{dataset.source}; apply them to the dataset they were made for")
        if row.action == "relabel":
            items.at[position[row.path], "label"] = row.new_label
    excluded = set(changes.loc[changes["action"] == "exclude", "path"])
    items = items[~items["relpath"].isin(excluded)].reset_index(drop=True)
    counts = items["label"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise TLToolsError("after these changes " + (f"class {counts.idxmin()!r} has only {counts.min()} image(s)"
                                                     if len(counts) >= 2 else "fewer than 2 classes are left")
                           + "; every class needs at least 2 images: exclude fewer images")
    changed = int((changes["action"] != "keep").sum())
    source = name or f"{dataset.source} with {changed} change(s)"
    result = dataclasses.replace(dataset, items=items, source=source)
    return result.with_recorded_split(items[["relpath", "split"]])


def write_version(dataset, changes: pd.DataFrame, out=None) -> Path:
    """Write a new dataset version: ``dataset``'s original images plus ``changes`` (merged with its own, if a version).

    Nothing is written outside the version folder; the images are never copied or touched.

    Args:
        dataset: A loaded :class:`~tltools.data.Dataset`: an original or a version.
        changes: Rows as :func:`read_changes` returns them.
        out: Folder to create (must not exist or be empty). Default: a new folder in the datasets
            folder, listed with the uploads so the Dataset page offers it.

    Returns:
        The version folder (load it with :func:`tltools.data.load_dataset`).

    Raises:
        TLToolsError: ``out`` exists and is not empty, or the changes do not fit the dataset
            (see :func:`apply_changes`).
    """
    base = getattr(dataset, "version_of", None) or {}
    original_root = Path(base.get("original") or dataset.root).resolve()
    earlier = base.get("changes")
    merged = merge_changes(earlier, changes) if earlier is not None else changes[COLUMNS].copy()
    original = _load(original_root, dataset.split_settings)
    apply_changes(original, merged)  # refuse changes that do not fit before anything is written
    text = merged.to_csv(index=False)
    digest = hashlib.sha256(f"{original_root}\n{text}".encode()).hexdigest()
    listed = out is None
    if out is None:
        out = paths.datasets_dir() / f"{original_root.name[:40]}-fixes-{digest[:12]}"
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not (listed and is_version(out)):
        raise TLToolsError(f"{out} already exists and is not empty; give a new folder for the version")
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_text(out / CHANGES_FILE, text)
    fileio.write_json(out / VERSION_FILE, {
        "original": str(original_root), "original_source": original.source,
        "original_fingerprint": original.fingerprint, "changes": CHANGES_FILE,
        "relabelled": int((merged["action"] == "relabel").sum()), "excluded": int((merged["action"] == "exclude").sum()),
        "reviewed": int(len(merged)), "created": datetime.datetime.now().isoformat(timespec="seconds"),
    })
    if listed:  # the Dataset page's "uploaded earlier" list shows folders with a manifest beside them
        fileio.write_json(out.with_name(out.name + ".json"), {
            "source": f"{original.source} with {int((merged['action'] != 'keep').sum())} fix(es)", "skipped": []})
    return out


def load_version(folder, *, split=None, limits=None, on_progress=None):
    """Load a dataset version: the original images, each in its original split, with the changes applied.

    Called by :func:`tltools.data.load_dataset` for a version folder; takes its keyword arguments.

    Raises:
        TLToolsError: The version file is unreadable, the original folder is gone, its images changed
            since the version was made (fingerprint), or the changes no longer fit.
    """
    folder = Path(folder).expanduser()
    try:
        record = fileio.read_json(folder / VERSION_FILE)
        original_root = Path(record["original"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TLToolsError(f"{folder / VERSION_FILE} is unreadable ({error}); make the version again from the "
                           "original data and its changes CSV") from None
    if not original_root.is_dir():
        raise TLToolsError(f"the original images of version {folder}, {original_root}, are gone; restore them, "
                           f"or apply {folder / CHANGES_FILE} to the data where it is now (--apply … --out …)")
    changes = read_changes(folder / CHANGES_FILE)
    original = _load(original_root, split, limits=limits, on_progress=on_progress)
    if record.get("original_fingerprint") and original.fingerprint != record["original_fingerprint"]:
        raise TLToolsError(f"the images in {original_root} have changed since version {folder} was made; "
                           f"apply {folder / CHANGES_FILE} to them again (--apply … --out NEW_DIR)")
    dataset = apply_changes(original, changes, name=f"{folder} ({original.source} with "
                                                   f"{int((changes['action'] != 'keep').sum())} change(s))")
    dataset.version = str(folder.resolve())
    dataset.version_of = {"original": str(original_root), "changes": changes}
    return dataset


def _load(root: Path, split, *, limits=None, on_progress=None):
    from tltools.data.dataset import load_dataset

    return load_dataset(root, split=split, limits=limits, on_progress=on_progress)
