"""Recognising folder-per-class, pre-split and wrapped layouts, and skipping clutter, by names alone."""

import pytest

from tests.factories import class_images, image_bytes, write_tree
from tltools.data.layout import CSV_LABELS, FOLDER_PER_CLASS, PRE_SPLIT, scan_layout
from tltools.errors import TLToolsError


def _labels(scan) -> dict[str, tuple[str, str | None]]:
    return {candidate.relpath: (candidate.label, candidate.split) for candidate in scan.candidates}


def test_folder_per_class_labels_each_image_by_its_folder(tmp_path):
    write_tree(tmp_path, {**class_images(per_class=2), "dog/puppies/3.png": image_bytes()})

    scan = scan_layout(tmp_path)

    assert scan.layout == FOLDER_PER_CLASS
    assert scan.root == tmp_path
    assert _labels(scan) == {
        "cat/0.png": ("cat", None),
        "cat/1.png": ("cat", None),
        "dog/0.png": ("dog", None),
        "dog/1.png": ("dog", None),
        "dog/puppies/3.png": ("dog", None),
    }
    assert scan.skipped == []


@pytest.mark.parametrize("val_name", ["val", "validation", "valid"])
@pytest.mark.parametrize("with_test", [False, True])
def test_pre_split_folders_give_each_image_its_split(tmp_path, val_name, with_test):
    files = {**class_images(prefix="train/"), **class_images(per_class=1, prefix=f"{val_name}/")}
    if with_test:
        files.update(class_images(per_class=1, prefix="test/"))
    write_tree(tmp_path, files)

    scan = scan_layout(tmp_path)

    assert scan.layout == PRE_SPLIT
    labels = _labels(scan)
    assert labels[f"{val_name}/dog/0.png"] == ("dog", "val")
    assert labels["train/cat/3.png"] == ("cat", "train")
    assert {split for _, split in labels.values()} == ({"train", "val", "test"} if with_test else {"train", "val"})


def test_pre_split_without_val_is_still_pre_split(tmp_path):
    write_tree(tmp_path, {**class_images(prefix="train/"), **class_images(per_class=1, prefix="test/")})

    scan = scan_layout(tmp_path)

    assert scan.layout == PRE_SPLIT
    assert {split for _, split in _labels(scan).values()} == {"train", "test"}


@pytest.mark.parametrize("wrapper", ["", "flowers/"])
def test_lone_train_folder_is_a_pre_split_not_a_wrapper(tmp_path, wrapper):
    write_tree(tmp_path, class_images(prefix=f"{wrapper}train/"))

    scan = scan_layout(tmp_path)

    assert scan.layout == PRE_SPLIT
    assert {label for label, _ in _labels(scan).values()} == {"cat", "dog"}
    assert {split for _, split in _labels(scan).values()} == {"train"}


@pytest.mark.hostile
def test_pre_split_class_without_training_images_is_left_out_with_a_warning(tmp_path):
    files = {**class_images(prefix="train/"), **class_images(("cat", "dog", "owl"), per_class=1, prefix="val/")}
    write_tree(tmp_path, files)

    scan = scan_layout(tmp_path)

    assert {label for label, _ in _labels(scan).values()} == {"cat", "dog"}
    assert [item.path for item in scan.skipped] == ["val/owl/0.png"]
    assert any("owl" in warning for warning in scan.warnings)


@pytest.mark.hostile
def test_pre_split_split_missing_a_class_is_warned_about(tmp_path):
    write_tree(tmp_path, {**class_images(prefix="train/"), **class_images(("cat",), per_class=1, prefix="val/")})

    scan = scan_layout(tmp_path)

    assert any("val split has no images of: dog" in warning for warning in scan.warnings)


@pytest.mark.hostile
def test_two_folders_for_the_same_split_is_an_error(tmp_path):
    write_tree(tmp_path, {**class_images(prefix="train/"), **class_images(prefix="val/"),
                          **class_images(prefix="validation/")})

    with pytest.raises(TLToolsError, match="same split twice"):
        scan_layout(tmp_path)


@pytest.mark.parametrize(
    "wrapper",
    ["flowers/", "my data/v2/", "Données/"],
    ids=["one-folder", "two-folders", "unicode-folder"],
)
@pytest.mark.parametrize("layout", [FOLDER_PER_CLASS, PRE_SPLIT])
def test_single_top_folders_are_descended_and_their_readme_is_documentation(tmp_path, wrapper, layout):
    prefix = "train/" if layout == PRE_SPLIT else ""
    files = {f"{wrapper}{path}": data for path, data in class_images(prefix=prefix).items()}
    first = wrapper.split("/")[0]
    files[f"{first}/README.md"] = "# my flowers"
    files[f"{wrapper}LICENSE"] = "CC-BY"
    files["SOURCE.txt"] = "downloaded from somewhere"
    write_tree(tmp_path, files)

    scan = scan_layout(tmp_path)

    assert scan.layout == layout
    assert scan.root == tmp_path / wrapper.rstrip("/")
    assert sorted(scan.documentation) == sorted(["SOURCE.txt", f"{first}/README.md", f"{wrapper}LICENSE"])
    assert scan.skipped == []
    assert len(scan.candidates) == len(class_images())


def test_readme_beside_class_folders_is_documentation_not_a_skipped_file(tmp_path):
    write_tree(tmp_path, {**class_images(), "README.txt": "about", "notes.md": "more"})

    scan = scan_layout(tmp_path)

    assert sorted(scan.documentation) == ["README.txt", "notes.md"]
    assert scan.skipped == []


def test_a_lone_folder_of_images_is_a_class_not_a_wrapper(tmp_path):
    write_tree(tmp_path, class_images(("cat",)))

    scan = scan_layout(tmp_path)

    assert {label for label, _ in _labels(scan).values()} == {"cat"}


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("junk", "reason_word"),
    [
        ("__MACOSX/cat/._0.png", "__MACOSX"),
        ("cat/._0.png", "resource fork"),
        ("cat/.DS_Store", ".DS_Store"),
        (".DS_Store", ".DS_Store"),
        ("dog/Thumbs.db", "Thumbs.db"),
        ("dog/desktop.ini", "desktop.ini"),
        (".git/objects/1.png", "hidden folder"),
        ("cat/.thumbnails/0.png", "hidden folder"),
        ("cat/.hidden.png", "hidden file"),
    ],
)
def test_operating_system_clutter_is_skipped_with_a_reason(tmp_path, junk, reason_word):
    write_tree(tmp_path, {**class_images(), junk: image_bytes()})

    scan = scan_layout(tmp_path)

    assert [item.path for item in scan.skipped] == [junk]
    assert reason_word in scan.skipped[0].reason
    assert junk not in {candidate.relpath for candidate in scan.candidates}
    assert scan.root == tmp_path  # clutter beside a folder does not hide the layout


def test_macosx_folder_beside_a_single_top_folder_does_not_stop_the_descent(tmp_path):
    files = {f"flowers/{path}": data for path, data in class_images().items()}
    files.update({f"__MACOSX/flowers/{path.replace('/', '/._')}": b"\0\5\26\7" for path in class_images()})
    write_tree(tmp_path, files)

    scan = scan_layout(tmp_path)

    assert scan.root == tmp_path / "flowers"
    assert scan.layout == FOLDER_PER_CLASS
    assert len(scan.skipped) == len(class_images())
    assert all(item.path.startswith("__MACOSX/") for item in scan.skipped)


@pytest.mark.parametrize(
    "name", ["a.jpg", "b.JPEG", "c.png", "d.bmp", "e.gif", "f.webp", "g.tif", "h.TIFF"]
)
def test_every_accepted_image_extension_is_a_candidate(tmp_path, name):
    write_tree(tmp_path, {**class_images(), f"cat/{name}": b"decoded later"})

    scan = scan_layout(tmp_path)

    assert f"cat/{name}" in {candidate.relpath for candidate in scan.candidates}


@pytest.mark.hostile
@pytest.mark.parametrize("name", ["cat/notes.txt", "cat/scan.pdf", "dog/model.h5", "dog/NOEXT", "cat/img.heic"])
def test_non_image_file_in_a_class_folder_is_skipped_as_not_an_image(tmp_path, name):
    write_tree(tmp_path, {**class_images(), name: b"something"})

    scan = scan_layout(tmp_path)

    assert [item.path for item in scan.skipped] == [name]
    assert scan.skipped[0].reason.startswith("not an image file")


@pytest.mark.hostile
def test_image_outside_any_class_folder_is_skipped(tmp_path):
    write_tree(tmp_path, {**class_images(), "stray.png": image_bytes()})

    scan = scan_layout(tmp_path)

    assert [(item.path, item.reason) for item in scan.skipped] == [("stray.png", "not inside a class folder")]


def test_file_outside_the_split_folders_is_skipped(tmp_path):
    write_tree(tmp_path, {**class_images(prefix="train/"), **class_images(prefix="val/"), "extra/x.png": image_bytes()})

    scan = scan_layout(tmp_path)

    assert [item.path for item in scan.skipped] == ["extra/x.png"]
    assert "split folder" in scan.skipped[0].reason


def test_csv_beside_flat_images_selects_the_csv_layout(tmp_path):
    files = {f"{n}.png": image_bytes(seed=n) for n in range(4)}
    files["labels.csv"] = "file,label\n0.png,cat\n1.png,cat\n2.png,dog\n3.png,dog\n"
    write_tree(tmp_path, files)

    assert scan_layout(tmp_path).layout == CSV_LABELS


@pytest.mark.hostile
@pytest.mark.parametrize(
    "files",
    [{}, {"README.md": "empty"}, {"notes/a.txt": "x"}, {"__MACOSX/._a.png": "x", ".DS_Store": "x"}],
    ids=["empty", "only-readme", "only-text", "only-clutter"],
)
def test_folder_without_images_is_an_error(tmp_path, files):
    write_tree(tmp_path, files)

    with pytest.raises(TLToolsError, match="no images found"):
        scan_layout(tmp_path)


def test_a_file_instead_of_a_folder_is_an_error(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(image_bytes())

    with pytest.raises(TLToolsError, match="not a folder"):
        scan_layout(path)
