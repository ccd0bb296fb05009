"""The csv-labels layout: columns found by content, missing files and unlabelled images reported."""

import pytest

from tests.factories import image_bytes, write_tree
from tltools.data import load_dataset
from tltools.data.layout import CSV_LABELS, FOLDER_PER_CLASS, scan_layout
from tltools.errors import TLToolsError

LABELS = {"0.png": "cat", "1.png": "cat", "2.png": "dog", "3.png": "dog"}


def _images(names=LABELS, folder="") -> dict[str, bytes]:
    return {f"{folder}{name}": image_bytes(seed=n) for n, name in enumerate(names)}


def _labels(scan) -> dict[str, tuple[str, str | None]]:
    return {candidate.relpath: (candidate.label, candidate.split) for candidate in scan.candidates}


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_file_and_label_columns_are_found_by_content_whatever_their_names(tmp_path, sep):
    rows = [sep.join(["id", "kind", "picture", "photographer"])]
    for n, (name, label) in enumerate(LABELS.items()):
        rows.append(sep.join([str(n), label, name, "ann" if n % 2 else "bob"]))
    write_tree(tmp_path, {**_images(), "meta.csv": "\n".join(rows) + "\n"})

    scan = scan_layout(tmp_path)

    assert scan.layout == CSV_LABELS
    assert _labels(scan) == {name: (label, None) for name, label in LABELS.items()}
    assert any("'picture'" in warning and "'kind'" in warning for warning in scan.warnings)


def test_a_column_called_label_wins_over_another_grouping_column(tmp_path):
    rows = ["file,group,label"] + [f"{name},g{n % 2},{label}" for n, (name, label) in enumerate(LABELS.items())]
    write_tree(tmp_path, {**_images(), "labels.csv": "\n".join(rows)})

    assert {label for label, _ in _labels(scan_layout(tmp_path)).values()} == {"cat", "dog"}


def test_images_named_by_subfolder_path_or_by_unique_file_name_are_both_found(tmp_path):
    files = _images(folder="images/")
    files["labels.csv"] = "path,label\nimages/0.png,cat\n./images/1.png,cat\n2.png,dog\nimages\\3.png,dog\n"
    write_tree(tmp_path, files)

    scan = scan_layout(tmp_path)

    assert _labels(scan) == {f"images/{name}": (label, None) for name, label in LABELS.items()}


@pytest.mark.hostile
def test_row_pointing_to_a_missing_file_is_reported(tmp_path):
    csv = "file,label\n" + "".join(f"{name},{label}\n" for name, label in LABELS.items()) + "ghost.png,dog\n"
    write_tree(tmp_path, {**_images(), "labels.csv": csv})

    report = load_dataset(tmp_path).report()

    assert report["num_images"] == 4
    assert [item["path"] for item in report["skipped"]] == ["ghost.png"]
    assert "row 6 of labels.csv" in report["skipped"][0]["reason"]
    assert "not in the dataset" in report["skipped"][0]["reason"]


@pytest.mark.hostile
def test_image_with_no_row_is_reported(tmp_path):
    csv = "file,label\n" + "".join(f"{name},{label}\n" for name, label in LABELS.items())
    write_tree(tmp_path, {**_images(), "extra.png": image_bytes(seed=99), "labels.csv": csv})

    scan = scan_layout(tmp_path)

    assert [(item.path, item.reason) for item in scan.skipped] == [("extra.png", "no row in labels.csv")]
    assert "extra.png" not in _labels(scan)


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("extra_row", "reason_part"),
    [("0.png,dog", "repeats the image of row 2"), ("1.png,", "empty label"), ("1.png", "empty label")],
    ids=["repeated-row", "empty-label", "short-row"],
)
def test_bad_rows_are_skipped_with_the_row_number(tmp_path, extra_row, reason_part):
    labels = dict(LABELS) if extra_row.startswith("0") else {k: v for k, v in LABELS.items() if k != "1.png"}
    csv = "file,label\n" + "".join(f"{name},{label}\n" for name, label in labels.items()) + extra_row + "\n"
    write_tree(tmp_path, {**_images(), "labels.csv": csv})

    scan = scan_layout(tmp_path)

    assert any(reason_part in item.reason and "labels.csv" in item.reason for item in scan.skipped)
    assert _labels(scan)["0.png"] == ("cat", None)


def test_split_column_fixes_each_images_split(tmp_path):
    csv = "file,label,Split\n0.png,cat,train\n1.png,cat,validation\n2.png,dog,TEST\n3.png,dog,\n"
    write_tree(tmp_path, {**_images(), "labels.csv": csv})

    assert _labels(scan_layout(tmp_path)) == {
        "0.png": ("cat", "train"), "1.png": ("cat", "val"), "2.png": ("dog", "test"), "3.png": ("dog", None)
    }


@pytest.mark.hostile
def test_unknown_split_value_is_an_error_naming_the_row(tmp_path):
    csv = "file,label,split\n0.png,cat,train\n1.png,cat,holdout\n2.png,dog,train\n3.png,dog,train\n"
    write_tree(tmp_path, {**_images(), "labels.csv": csv})

    with pytest.raises(TLToolsError, match="row 3 of labels.csv: split 'holdout'"):
        scan_layout(tmp_path)


def test_csv_that_names_no_image_leaves_the_folder_per_class_layout(tmp_path):
    files = {f"{label}/{name}": image_bytes(seed=n) for n, (name, label) in enumerate(LABELS.items())}
    files["stats.csv"] = "epoch,accuracy\n1,0.5\n2,0.7\n"
    write_tree(tmp_path, files)

    scan = scan_layout(tmp_path)

    assert scan.layout == FOLDER_PER_CLASS
    assert {label for label, _ in _labels(scan).values()} == {"cat", "dog"}


def test_the_csv_naming_most_images_is_used_and_the_other_reported(tmp_path):
    good = "file,label\n" + "".join(f"{name},{label}\n" for name, label in LABELS.items())
    partial = "file,label\n0.png,x\n1.png,y\n0.png,x\n"
    write_tree(tmp_path, {**_images(), "a_partial.csv": partial, "b_labels.csv": good})

    scan = scan_layout(tmp_path)

    assert {label for label, _ in _labels(scan).values()} == {"cat", "dog"}
    assert ("a_partial.csv", "CSV file not used (another CSV holds the labels)") in {
        (item.path, item.reason) for item in scan.skipped
    }


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("file\n0.png\n1.png\n2.png\n3.png\n", "no label column"),
        ("file,label\n0.png,a\n1.png,b\n2.png,c\n3.png,d\n", "no label column"),
        (b"\xff\xfe\x00bad\x00\xa0\xb1", "not a readable CSV"),
    ],
    ids=["single-column", "one-label-per-row", "binary"],
)
def test_unusable_csv_is_a_one_line_error(tmp_path, csv, message):
    write_tree(tmp_path, {**_images(), "labels.csv": csv})

    with pytest.raises(TLToolsError, match=message) as raised:
        scan_layout(tmp_path)

    assert "\n" not in str(raised.value)


def test_csv_layout_loads_unicode_and_space_file_names(tmp_path):
    names = {"chat noir 1.png": "chat", "chat noir 2.png": "chat", "犬 1.png": "犬", "犬 2.png": "犬"}
    csv = "fichier,étiquette\n" + "".join(f"{name},{label}\n" for name, label in names.items())
    write_tree(tmp_path, {**_images(names), "étiquettes.csv": csv})

    report = load_dataset(tmp_path).report()

    assert report["layout"] == CSV_LABELS
    assert report["classes"] == {"chat": 2, "犬": 2}
    assert report["skipped"] == []
