"""The ``csv-labels`` layout: images plus one CSV file naming each image's label.

This is the case Keras' old ``flow_from_dataframe`` served. The columns are
found by content, not by name: the file-name column is the one whose values
name the most existing image files (as a relative path, or a file name when it
is unique), the label column is the first other column that groups rows into
at least two classes (a column called ``label``, ``class``, ``category``,
``target`` or ``species`` wins). An optional column named ``split`` with
train/val/test values fixes the splits.

Labels are text, used as given (``cat/dog``, ``../x`` or ``😀`` are just class
names), except that line breaks and other control characters become spaces:
class names are stored one per line in a run's ``labels.txt``.
"""

import csv
import posixpath
from pathlib import Path

import pandas as pd

from tltools.data.archive import Skipped
from tltools.data.images import is_image_name
from tltools.data.layout import CONTROL_CHARACTERS, CSV_LABELS, SPLIT_ALIASES, Candidate, LayoutScan, not_an_image
from tltools.errors import TLToolsError

_LABEL_NAMES = ("label", "labels", "class", "category", "target", "species")
_DELIMITERS = ",;\t|"


def scan_csv_labels(root: Path, files: list[str], csv_files: list[str]) -> LayoutScan | None:
    """Label the images in ``files`` from the best-matching CSV among ``csv_files``.

    Args:
        root: Dataset root folder.
        files: Every non-clutter file below ``root``, relative, "/" separated.
        csv_files: The ``.csv`` files at the top of ``root``.

    Returns:
        The scan, or None when no CSV has a column naming the images (the
        caller then tries the folder-per-class layout).

    Raises:
        TLToolsError: A CSV cannot be parsed, or names images but has no
            usable label column.
    """
    images = [path for path in files if is_image_name(path)]
    lookup = _image_lookup(images)
    best = None
    for csv_name in csv_files:
        table = _read_csv(root / csv_name, csv_name)
        column, hits = _file_column(table, lookup)
        if column is not None and (best is None or hits > best[2]):
            best = (csv_name, table, hits, column)
    if best is None:
        return None
    csv_name, table, _, file_column = best
    label_column = _label_column(table, file_column, csv_name)
    split_column = next((c for c in table.columns if str(c).strip().lower() == "split"), None)
    candidates, skipped, cleaned = _label_rows(table, csv_name, lookup, file_column, label_column, split_column)
    reported = {candidate.relpath for candidate in candidates} | {item.path for item in skipped}
    skipped += [Skipped(path, f"no row in {csv_name}") for path in images if path not in reported]
    skipped += [
        Skipped(path, "CSV file not used (another CSV holds the labels)") if path.lower().endswith(".csv")
        else not_an_image(path)
        for path in files
        if path != csv_name and not is_image_name(path)
    ]
    warnings = [f"labels read from {csv_name}: file names in column {file_column!r}, labels in {label_column!r}"]
    if cleaned:
        raw, label = next(iter(cleaned.items()))
        warnings.append(f"{len(cleaned)} label(s) in {csv_name} held line breaks or control characters, "
                        f"replaced by spaces (e.g. {raw!r} became {label!r})")
    candidates.sort(key=lambda candidate: candidate.relpath)
    return LayoutScan(root, CSV_LABELS, candidates, skipped, warnings)


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=_delimiter(path), engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise TLToolsError(f"{name} is not a readable CSV file ({error}); save it as UTF-8 CSV") from None
    table.columns = [str(column).strip() for column in table.columns]
    return table.fillna("")  # short rows leave NaN even with keep_default_na=False


def _delimiter(path: Path) -> str:
    """Sniff the delimiter among , ; tab | (pandas' own sniffing picks letters for a one-column CSV)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        sample = handle.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _image_lookup(images: list[str]) -> dict[str, str]:
    """Map every way a CSV may name an image (path, or unique file name) to its path."""
    lookup = {path: path for path in images}
    by_name: dict[str, list[str]] = {}
    for path in images:
        by_name.setdefault(posixpath.basename(path), []).append(path)
    for name, paths in by_name.items():
        if len(paths) == 1:
            lookup.setdefault(name, paths[0])
    return lookup


def _normalise(value: str) -> str:
    value = value.strip().replace("\\", "/")
    while value.startswith("./"):
        value = value[2:]
    return value


def _file_column(table: pd.DataFrame, lookup: dict[str, str]) -> tuple[str | None, int]:
    best, best_hits = None, 0
    for column in table.columns:
        hits = sum(_normalise(value) in lookup for value in table[column])
        if hits > best_hits:
            best, best_hits = column, hits
    return best, best_hits


def _label_column(table: pd.DataFrame, file_column: str, csv_name: str) -> str:
    usable = [
        column
        for column in table.columns
        if column != file_column
        and column.lower() != "split"
        and 2 <= table[column].str.strip().replace("", pd.NA).nunique() < len(table)
    ]
    named = [column for column in usable if column.lower() in _LABEL_NAMES]
    if named or usable:
        return (named or usable)[0]
    raise TLToolsError(
        f"{csv_name} names the images in column {file_column!r} but has no label column "
        "(a column with at least two different labels, shared by several rows)"
    )


def _clean_label(value: str) -> str:
    """Return ``value`` stripped, with each run of control characters and spaces made one space."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", value).split()) if CONTROL_CHARACTERS.search(value) else value.strip()


def _label_rows(table, csv_name, lookup, file_column, label_column, split_column):
    """Return (candidates, skipped, cleaned labels: raw -> label) from the rows of the labels table."""
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    cleaned: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        values = dict(zip(table.columns, row))
        name = _normalise(values[file_column])
        label = _clean_label(values[label_column])
        if label and label != values[label_column].strip():
            cleaned.setdefault(values[label_column], label)
        where = f"row {row_number} of {csv_name}"
        path = lookup.get(name)
        if not name:
            continue
        if path is None:
            skipped.append(Skipped(name, f"{where} names an image that is not in the dataset"))
        elif not label:
            skipped.append(Skipped(path, f"{where} has an empty label"))
        elif path in first_row:
            skipped.append(Skipped(path, f"{where} repeats the image of row {first_row[path]}; the first row was used"))
        else:
            split = _split_value(values.get(split_column, ""), where) if split_column else None
            first_row[path] = row_number
            candidates.append(Candidate(path, label, split))
    return candidates, skipped, cleaned


def _split_value(value: str, where: str) -> str | None:
    value = value.strip().lower()
    if not value:
        return None
    if value not in SPLIT_ALIASES:
        raise TLToolsError(f"{where}: split {value!r} is not train, val or test")
    return SPLIT_ALIASES[value]
