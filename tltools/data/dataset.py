"""A checked, labelled, split image dataset, and :func:`load_dataset` that makes one.

``load_dataset`` takes a ``.zip`` (path, bytes or an uploaded file object) or a
folder, extracts archives safely (:mod:`tltools.data.archive`), recognises the
layout (:mod:`tltools.data.layout`), decodes every image once
(:mod:`tltools.data.ingest`), splits (:mod:`tltools.data.split`) and returns a
:class:`Dataset` with a JSON-friendly :meth:`Dataset.report`.
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tltools import fileio, housekeeping, paths
from tltools.data.archive import Skipped, extract_zip
from tltools.data.ingest import check_images
from tltools.data.layout import NoImagesError, no_images_message, scan_layout
from tltools.data.split import SPLITS, SplitSettings, assign_splits, check_split_settings
from tltools.errors import TLToolsError
from tltools.limits import Limits, default_limits

IMBALANCE_RATIO = 3.0  # largest/smallest class size from which imbalance is warned about
_ITEM_COLUMNS = ["relpath", "label", "label_index", "split", "given_split", "width", "height", "sha1"]


@dataclasses.dataclass
class Dataset:
    """A usable image classification dataset.

    Attributes:
        source: What was loaded (a path, or the uploaded file's name).
        root: Folder the image paths are relative to.
        layout: ``folder-per-class``, ``pre-split`` or ``csv-labels``.
        classes: Class names, sorted; a label's index is its position here.
        items: One row per usable image: ``relpath``, ``label``, ``label_index``,
            ``split`` (train/val/test), ``given_split`` (the split the input fixed,
            or None), ``width``, ``height``, ``sha1`` (of the file's bytes).
        skipped: Files left out, with reasons.
        warnings: Problems that did not stop loading (imbalance, leakage, ...).
        documentation: Description files found beside the data (README, LICENSE, ...).
        split_settings: The settings the splits not given by the input were drawn with
            (a record: a run's :class:`~tltools.training.TrainConfig` owns them, see :meth:`with_splits`).
        version: For a dataset version (the original images plus a changes CSV, see
            :mod:`tltools.health.versions`), its folder; None for original data.
        version_of: For a version, ``{"original": folder, "changes": DataFrame}``; None otherwise.
    """

    source: str
    root: Path
    layout: str
    classes: list[str]
    items: pd.DataFrame
    skipped: list[Skipped]
    warnings: list[str]
    split_settings: SplitSettings
    documentation: list[str] = dataclasses.field(default_factory=list)
    version: str | None = None  # a dataset version's folder (tltools.health.versions), None for an original
    version_of: dict | None = dataclasses.field(default=None, repr=False, compare=False)  # its original and changes
    _layout_warnings: list[str] = dataclasses.field(default_factory=list, repr=False)
    _lease: object = dataclasses.field(default=None, repr=False, compare=False)  # see tltools.housekeeping

    @property
    def given_splits(self) -> list[str]:
        """Splits fixed by the input itself (e.g. ``["train", "test"]``), in train/val/test order."""
        given = set(self.items["given_split"].dropna())
        return [split for split in SPLITS if split in given]

    @property
    def fingerprint(self) -> str:
        """A hex digest of the images' bytes and labels, independent of splits and location."""
        digest = hashlib.sha256()
        for row in self.items.sort_values("relpath").itertuples():
            digest.update(f"{row.relpath}\0{row.sha1}\0{row.label}\n".encode())
        return digest.hexdigest()

    def split(self, name: str) -> pd.DataFrame:
        """Return the rows of split ``name`` (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise TLToolsError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return self.items[self.items["split"] == name]

    def paths(self, split: str) -> list[Path]:
        """Return the absolute image paths of a split."""
        return [self.root / relpath for relpath in self.split(split)["relpath"]]

    def labels(self, split: str) -> np.ndarray:
        """Return the integer labels (indices into :attr:`classes`) of a split."""
        return self.split(split)["label_index"].to_numpy(dtype=np.int32)

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        """Return images per class, in class order, for one split or all images."""
        rows = self.items if split is None else self.split(split)
        counts = rows["label"].value_counts()
        return {name: int(counts.get(name, 0)) for name in self.classes}

    @property
    def val_fraction(self) -> float:
        """The validation share the split was drawn with."""
        return self.split_settings.val_fraction

    @property
    def test_fraction(self) -> float:
        """The test share the split was drawn with."""
        return self.split_settings.test_fraction

    @property
    def seed(self) -> int:
        """The seed the split was drawn with."""
        return self.split_settings.seed

    def with_splits(self, settings: SplitSettings | None = None, /, **changes) -> "Dataset":
        """Return the dataset split as ``settings`` say (e.g. a run's TrainConfig); images are not read again.

        This is the one way a dataset is split: :func:`load_dataset`, the trainer and the
        Dataset page all call it with the config's settings.

        Args:
            settings: Any :class:`SplitSettings` (a :class:`~tltools.training.TrainConfig` is one).
            **changes: Or some of ``val_fraction``, ``test_fraction``, ``seed`` to change.

        Returns:
            ``self`` when it is already split so, else a re-split copy with its warnings recomputed.

        Raises:
            TLToolsError: A setting is out of range.
        """
        wanted = settings.split_settings if settings is not None else self.split_settings.replace(**changes)
        if wanted == self.split_settings and self.items["split"].notna().all():
            return self
        items = self.items.copy()
        items["split"] = assign_splits(
            list(items["label"]),
            [split if isinstance(split, str) else None for split in items["given_split"]],
            val_fraction=wanted.val_fraction,
            test_fraction=wanted.test_fraction,
            seed=wanted.seed,
        )
        return _finish(dataclasses.replace(self, items=items, split_settings=wanted))

    def with_recorded_split(self, recorded: pd.DataFrame) -> "Dataset":
        """Return a copy holding only the images ``recorded`` lists, each in its recorded split.

        Args:
            recorded: ``relpath`` and ``split`` columns, e.g. a run's ``splits.csv``;
                every ``relpath`` must be one of this dataset's images.

        Returns:
            The dataset restricted to those images; classes and label indices are
            those of the kept images, warnings recomputed. Images not listed are left out.
        """
        splits = recorded.set_index("relpath")["split"]
        items = self.items[self.items["relpath"].isin(splits.index)].copy()
        items["split"] = items["relpath"].map(splits)
        classes = sorted(set(items["label"]))
        items["label_index"] = items["label"].map({label: i for i, label in enumerate(classes)})
        return _finish(dataclasses.replace(self, classes=classes, items=items.reset_index(drop=True)))

    def report(self) -> dict:
        """Return a JSON-friendly summary: layout, classes with counts, splits, skipped, warnings."""
        sizes = self.items[["width", "height"]]
        return {
            "source": self.source,
            "root": str(self.root),
            "layout": self.layout,
            "num_images": int(len(self.items)),
            "num_classes": len(self.classes),
            "classes": self.class_counts(),
            "splits": {split: self.class_counts(split) for split in SPLITS if (self.items["split"] == split).any()},
            "given_splits": self.given_splits,
            "split_settings": self.split_settings.model_dump(),
            "image_size": {
                "min": [int(sizes["width"].min()), int(sizes["height"].min())],
                "median": [int(sizes["width"].median()), int(sizes["height"].median())],
                "max": [int(sizes["width"].max()), int(sizes["height"].max())],
            },
            "skipped": [dataclasses.asdict(item) for item in self.skipped],
            "warnings": list(self.warnings),
            "documentation": list(self.documentation),
            "version": self.version,
        }


def load_dataset(
    source,
    *,
    split: SplitSettings | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    seed: int | None = None,
    limits: Limits | None = None,
    on_progress=None,
) -> Dataset:
    """Load a dataset from a folder or a ``.zip`` archive.

    Args:
        source: A folder path, a ``.zip`` path, the archive's ``bytes``, or a
            binary file object with the archive (e.g. Streamlit's ``UploadedFile``).
        split: The split settings, e.g. the run's :class:`~tltools.training.TrainConfig`;
            defaults to :class:`~tltools.data.split.SplitSettings`' defaults.
        val_fraction, test_fraction, seed: Or these settings one by one (each
            overrides ``split``'s); see :class:`~tltools.data.split.SplitSettings`.
        limits: Safety limits; defaults to :func:`tltools.limits.default_limits`.
        on_progress: Optional ``callable(stage: str, done: int, total: int)``
            called while extracting and checking images.

    Returns:
        The checked dataset.

    Raises:
        TLToolsError: The split settings are invalid (checked before anything
            is extracted); the input is missing or unreadable, breaks a safety
            limit, holds no images (the message names the first few files
            skipped and why), fewer than 2 classes, more than
            ``limits.max_classes``, or a class with fewer than 2 images. An
            archive extracted by this call is removed again in that case.
    """
    given = {name: value for name, value in
             (("val_fraction", val_fraction), ("test_fraction", test_fraction), ("seed", seed)) if value is not None}
    settings = split.split_settings if split is not None else SplitSettings()
    if given:
        settings = check_split_settings(**{**settings.model_dump(), **given})
    limits = limits or default_limits()
    from tltools.health import versions  # a version folder: the original images plus a changes CSV

    if isinstance(source, (str, Path)) and versions.is_version(Path(source).expanduser()):
        return versions.load_version(source, split=settings, limits=limits, on_progress=on_progress)
    progress = on_progress or (lambda stage, done, total: None)
    name, folder, extract_skipped, fresh = _materialise(source, limits, progress)
    lease = housekeeping.lease_dataset(folder)  # no cleanup deletes the folder while a Dataset of it lives
    housekeeping.maybe_clean()
    try:
        return dataclasses.replace(_load_folder(name, folder, extract_skipped, limits, progress, settings),
                                   _lease=lease)
    except TLToolsError:
        if lease is not None:
            lease.release()
        if fresh:  # an unusable upload leaves nothing behind (nor in the "uploaded earlier" list)
            _remove_extraction(folder)
        raise


def _load_folder(name: str, folder: Path, extract_skipped: list[Skipped], limits: Limits, progress,
                 settings: SplitSettings) -> Dataset:
    """Scan, check and split the dataset in ``folder``; ``extract_skipped`` are the archive's own skips."""
    try:
        scan = scan_layout(folder)
    except NoImagesError as error:
        raise NoImagesError(name, extract_skipped + error.skipped, error.hint) from None
    checked, broken = check_images(
        scan.root,
        scan.candidates,
        max_pixels=limits.max_image_pixels,
        on_progress=lambda done, total: progress("checking images", done, total),
    )
    broken = _relative_to(folder, scan.root, broken)
    skipped = extract_skipped + scan.skipped + broken
    if not checked:
        raise TLToolsError(no_images_message(
            f"no readable images in {name}", broken + extract_skipped + scan.skipped,
            "every image file is damaged or not really an image; check the files open in an image viewer"))
    classes = sorted({image.candidate.label for image in checked})
    _check_classes(checked, classes, limits)
    index = {label: position for position, label in enumerate(classes)}
    items = pd.DataFrame(
        [
            (c.candidate.relpath, c.candidate.label, index[c.candidate.label], None,
             c.candidate.split, c.width, c.height, c.sha1)
            for c in checked
        ],
        columns=_ITEM_COLUMNS,
    )
    dataset = Dataset(
        source=name,
        root=scan.root,
        layout=scan.layout,
        classes=classes,
        items=items,
        skipped=skipped,
        warnings=[],
        split_settings=settings,
        documentation=scan.documentation,
        _layout_warnings=list(scan.warnings) + _case_warnings(classes),
    )
    return dataset.with_splits(settings)


def _materialise(source, limits: Limits, progress) -> tuple[str, Path, list[Skipped], bool]:
    """Return (display name, folder, skipped entries, extracted by this call), extracting archives first."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            return str(path), path, [], False
        if not path.exists():
            raise TLToolsError(f"{path} does not exist; give a .zip file or a folder of images")
        if not path.is_file():
            raise TLToolsError(f"{path} is not a regular file; give a .zip file or a folder of images")
        return _extract(str(path), path, limits, progress)
    if isinstance(source, (bytes, bytearray)):
        return _extract("the uploaded archive", bytes(source), limits, progress)
    if hasattr(source, "read"):
        name = getattr(source, "name", None) or "the uploaded archive"
        return _extract(str(name), source, limits, progress)
    raise TLToolsError(f"cannot load a dataset from a {type(source).__name__}; give a path, bytes or a file object")


def extract_upload(archive, name: str, *, limits: Limits | None = None) -> Path:
    """Extract an uploaded archive into the uploads area once per content, as :func:`load_dataset` does; return its folder.

    For archives that are not a labelled dataset (e.g. unlabelled images to adapt to): the folder
    outlives the request that uploaded it, and :mod:`tltools.housekeeping` cleans it like any upload.

    Args:
        archive: The zip's bytes, a file object or a path.
        name: The archive's file name (the folder is named after it).
        limits: Size and count limits (default: :func:`tltools.limits.default_limits`).

    Raises:
        TLToolsError: An unsafe or oversized archive, or a disk that refuses the write.
    """
    return _extract(name, archive, limits or default_limits(), lambda stage, done, total: None)[1]


def _extract(name: str, archive, limits: Limits, progress) -> tuple[str, Path, list[Skipped], bool]:
    """Extract an archive into the datasets folder, once per distinct archive content.

    A folder at the target is always a complete extraction (extract_zip renames it into
    place whole), so it is reused; its manifest adds the skipped entries and lists it
    among earlier uploads. Returns (name, folder, skipped, extracted by this call).
    """
    digest = _archive_digest(archive)
    stem = Path(name).stem if name.lower().endswith(".zip") else "upload"
    target = paths.datasets_dir() / f"{_safe_stem(stem)}-{digest[:16]}"
    manifest = target.with_name(target.name + ".json")
    if target.is_dir() and manifest.is_file():
        try:
            skipped = [Skipped(**entry) for entry in json.loads(manifest.read_text())["skipped"]]
            return name, target, skipped, False
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged manifest: extract again to rebuild it
    fresh = not target.is_dir()
    progress("extracting", 0, 1)
    skipped = extract_zip(archive, target, limits=limits)
    try:
        fileio.write_json(manifest, {"source": name, "sha256": digest,
                                     "skipped": [dataclasses.asdict(s) for s in skipped]})
    except OSError as error:
        if fresh:
            shutil.rmtree(target, ignore_errors=True)
        if not fileio.is_disk_error(error):
            raise
        raise TLToolsError(fileio.disk_error_message(error, manifest)) from None
    progress("extracting", 1, 1)
    return name, target, skipped, fresh


def _remove_extraction(folder: Path) -> None:
    """Delete an extracted archive and its manifest."""
    folder.with_name(folder.name + ".json").unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _archive_digest(archive) -> str:
    digest = hashlib.sha256()
    if isinstance(archive, bytes):
        digest.update(archive)
    elif isinstance(archive, Path):
        with open(archive, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    else:
        archive.seek(0)
        while chunk := archive.read(1 << 20):
            digest.update(chunk)
        archive.seek(0)
    return digest.hexdigest()


def _safe_stem(stem: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:40]
    return cleaned or "upload"


def _relative_to(top: Path, root: Path, skipped: list[Skipped]) -> list[Skipped]:
    """Re-express skipped paths relative to ``root`` as paths relative to ``top``."""
    prefix = root.relative_to(top).as_posix()
    if prefix == ".":
        return skipped
    return [Skipped(f"{prefix}/{item.path}", item.reason) for item in skipped]


def _check_classes(checked, classes: list[str], limits: Limits) -> None:
    """Refuse fewer than 2 classes, more than ``limits.max_classes``, and classes of a single image.

    A one-image class is an error rather than a warning: it could be trained on but
    never validated, so its accuracy would be unknown while the metrics looked complete.
    """
    if len(classes) < 2:
        raise TLToolsError(
            f"only one class found ({classes[0]!r}); a classifier needs at least 2 classes, "
            "each in its own folder (or with its own label in the CSV)"
        )
    if len(classes) > limits.max_classes:
        raise TLToolsError(
            f"{len(classes)} classes is over the limit of {limits.max_classes} "
            "(raise TLTOOLS_MAX_CLASSES if that is intended)"
        )
    counts = pd.Series([image.candidate.label for image in checked]).value_counts()
    tiny = sorted(counts[counts < 2].index)
    if tiny:
        named = ", ".join(repr(label) for label in tiny[:5]) + (f" and {len(tiny) - 5} more" if len(tiny) > 5 else "")
        raise TLToolsError(
            f"{'class' if len(tiny) == 1 else 'classes'} {named} {'has' if len(tiny) == 1 else 'have'} "
            "only 1 usable image; every class needs at least 2 (one to train on, one to validate with): "
            "add images or remove that class"
        )


def _case_warnings(classes: list[str]) -> list[str]:
    """Warn about class names that differ only in letter case (kept apart, as the names differ)."""
    groups: dict[str, list[str]] = {}
    for label in classes:
        groups.setdefault(label.casefold(), []).append(label)
    clashes = [names for names in groups.values() if len(names) > 1]
    if not clashes:
        return []
    shown = "; ".join(" and ".join(repr(name) for name in names) for names in clashes[:3])
    return [
        f"class names that differ only in letter case are kept as separate classes: {shown}; "
        "if they are the same class, rename the folders (or labels) to one spelling"
    ]


def _finish(dataset: Dataset) -> Dataset:
    """Recompute the warnings that depend on the split."""
    dataset.warnings = list(dataset._layout_warnings) + _imbalance_warnings(dataset) + _leakage_warnings(dataset)
    return dataset


def _imbalance_warnings(dataset: Dataset) -> list[str]:
    counts = dataset.class_counts()
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    ratio = counts[largest] / counts[smallest]
    if ratio < IMBALANCE_RATIO:
        return []
    return [
        f"classes are imbalanced: {largest!r} has {counts[largest]} images, {smallest!r} only "
        f"{counts[smallest]} ({ratio:.1f}x); consider balanced class weights or more images"
    ]


def _leakage_warnings(dataset: Dataset) -> list[str]:
    groups = dataset.items.groupby("sha1")["split"].nunique()
    leaked = groups[groups > 1].index
    if len(leaked) == 0:
        return []
    example = dataset.items[dataset.items["sha1"] == leaked[0]].drop_duplicates("split")
    places = " and ".join(f"{row.relpath} ({row.split})" for row in example.head(2).itertuples())
    return [
        f"{len(leaked)} identical image(s) appear in more than one split (e.g. {places}); "
        "evaluation on a split that shares images with training overstates accuracy: remove the copies"
    ]
