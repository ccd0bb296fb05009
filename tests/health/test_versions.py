"""Non-destructive dataset versions: the original plus a changes CSV, loaded like any dataset."""

import hashlib

import pandas as pd
import pytest

from tests.factories import colour_images, write_tree
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.health import versions

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 200)}


def file_hashes(root):
    return {path.relative_to(root).as_posix(): hashlib.sha1(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture
def original(tmp_path):
    return write_tree(tmp_path / "colours", colour_images(COLOURS, 6, seed=0))


def changes(*rows):
    return pd.DataFrame(rows, columns=versions.COLUMNS)


def test_version_applies_changes_and_never_touches_the_original(original, tmp_path):
    before = file_hashes(original)
    dataset = load_dataset(original)
    fixes = changes(("red/0.png", "red", "green", "relabel", "likely label error"),
                    ("blue/1.png", "blue", "", "exclude", "near duplicate"),
                    ("green/2.png", "green", "", "keep", "reviewed"))
    folder = versions.write_version(dataset, fixes, tmp_path / "fixed")
    assert file_hashes(original) == before, "the original images or folder changed"
    assert sorted(p.name for p in folder.iterdir()) == [versions.CHANGES_FILE, versions.VERSION_FILE]
    version = load_dataset(folder)
    assert version.version == str(folder.resolve()) and version.report()["version"] == version.version
    assert version.root == dataset.root, "images are read from the original folder"
    items = version.items.set_index("relpath")
    assert items.at["red/0.png", "label"] == "green"
    assert "blue/1.png" not in items.index and len(items) == len(dataset.items) - 1
    assert items.at["green/2.png", "label"] == "green"
    original_splits = dataset.items.set_index("relpath")["split"]
    assert (items["split"] == original_splits[items.index]).all(), "images keep their split"
    assert version.classes == ["blue", "green", "red"]
    assert (items["label_index"] == items["label"].map({"blue": 0, "green": 1, "red": 2})).all()
    assert version.fingerprint != dataset.fingerprint
    assert file_hashes(original) == before


def test_a_version_of_a_version_merges_changes_on_the_first_original(original, tmp_path):
    first = versions.write_version(load_dataset(original), changes(("red/0.png", "red", "green", "relabel", "")),
                                   tmp_path / "v1")
    second = versions.write_version(load_dataset(first), changes(("red/0.png", "red", "", "exclude", "off topic"),
                                                                 ("red/1.png", "red", "blue", "relabel", "")),
                                    tmp_path / "v2")
    merged = versions.read_changes(second / versions.CHANGES_FILE)
    assert merged[["path", "action"]].values.tolist() == [["red/0.png", "exclude"], ["red/1.png", "relabel"]]
    items = load_dataset(second).items.set_index("relpath")
    assert "red/0.png" not in items.index and items.at["red/1.png", "label"] == "blue"


def test_default_folder_is_listed_with_the_uploads(original):
    from tltools.data.uploads import list_uploaded_datasets

    folder = versions.write_version(load_dataset(original), changes(("red/0.png", "red", "green", "relabel", "")))
    assert any(item.folder == folder and "1 fix" in item.source for item in list_uploaded_datasets())
    assert versions.write_version(load_dataset(original),
                                  changes(("red/0.png", "red", "green", "relabel", ""))) == folder  # same changes


@pytest.mark.parametrize("csv, message", [
    ("path,old_label\nred/0.png,red\n", "lacks the column"),
    ("path,old_label,new_label,action,reason\nred/0.png,red,,rename,\n", "action 'rename'"),
    ("path,old_label,new_label,action,reason\nred/0.png,red,,relabel,\n", "needs a new_label"),
    ("path,old_label,new_label,action,reason\nred/0.png,red,,keep,\nred/0.png,red,,exclude,\n", "more than once"),
])
def test_bad_changes_csv_is_one_line(csv, message):
    with pytest.raises(TLToolsError, match=message):
        versions.read_changes(csv.encode())


@pytest.mark.parametrize("row, message", [
    (("red/99.png", "red", "", "exclude", ""), "not an image of"),
    (("red/0.png", "blue", "green", "relabel", ""), "labelled 'blue' but it is 'red'"),
])
def test_changes_that_do_not_fit_are_refused_before_writing(original, tmp_path, row, message):
    with pytest.raises(TLToolsError, match=message):
        versions.write_version(load_dataset(original), changes(row), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_excluding_a_class_down_to_one_image_is_refused(original, tmp_path):
    rows = [(f"red/{i}.png", "red", "", "exclude", "") for i in range(5)]
    with pytest.raises(TLToolsError, match="class 'red' has only 1 image"):
        versions.write_version(load_dataset(original), changes(*rows), tmp_path / "out")


def test_non_empty_out_folder_is_refused(original, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(TLToolsError, match="already exists and is not empty"):
        versions.write_version(load_dataset(original), changes(("red/0.png", "red", "", "keep", "")),
                               tmp_path / "busy")
    assert (tmp_path / "busy" / "x.txt").read_text() == "mine"


def test_original_changed_since_the_version_is_refused(original, tmp_path):
    folder = versions.write_version(load_dataset(original), changes(("red/0.png", "red", "", "keep", "")),
                                    tmp_path / "v")
    (original / "red" / "5.png").write_bytes((original / "green" / "5.png").read_bytes())
    with pytest.raises(TLToolsError, match="have changed since version"):
        load_dataset(folder)
