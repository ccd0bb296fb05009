"""load_dataset end to end: inputs, layouts, the report, errors, warnings and re-splitting."""

import io

import numpy as np
import pytest

from tests.factories import class_images, image_bytes, write_tree, zip_bytes
from tltools import paths
from tltools.data import dataset as dataset_module
from tltools.data import ingest, load_dataset
from tltools.data.uploads import list_uploaded_datasets
from tltools.errors import TLToolsError
from tltools.limits import Limits


class UploadedFile(io.BytesIO):
    """Stands in for Streamlit's UploadedFile: a BytesIO with the browser's file name."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


def _report_without_location(dataset) -> dict:
    report = dataset.report()
    del report["source"], report["root"]
    return report


@pytest.fixture
def datasets_listing():
    """Return a function listing the datasets folder, to see what a load left behind."""
    return lambda: sorted(path.name for path in paths.datasets_dir().glob("*")) if paths.datasets_dir().exists() else []


@pytest.mark.parametrize("kind", ["zip path", "bytes", "uploaded file", "folder"])
def test_zip_path_bytes_uploaded_file_and_folder_load_the_same_dataset(tmp_path, kind):
    files = class_images(("cat", "dog", "owl"), per_class=5)
    data = zip_bytes(files)
    (tmp_path / "pets.zip").write_bytes(data)
    write_tree(tmp_path / "pets", files)
    source = {
        "zip path": tmp_path / "pets.zip",
        "bytes": data,
        "uploaded file": UploadedFile(data, "pets.zip"),
        "folder": tmp_path / "pets",
    }[kind]

    dataset = load_dataset(source)

    assert _report_without_location(dataset) == _report_without_location(load_dataset(tmp_path / "pets"))
    assert dataset.classes == ["cat", "dog", "owl"]
    if kind == "folder":
        assert dataset.root == tmp_path / "pets"  # a folder is used where it is, not copied
    else:
        assert dataset.root.parent == paths.datasets_dir()  # archives are extracted into TLTOOLS_HOME/datasets


def test_uploaded_file_is_reported_under_its_own_name():
    assert load_dataset(UploadedFile(zip_bytes(class_images()), "my pets.zip")).source == "my pets.zip"


def test_report_has_sorted_classes_counts_splits_and_image_sizes(tmp_path):
    files = {**class_images(("zebra", "ant"), per_class=5, size=(30, 20))}
    files["ant/big.png"] = image_bytes(size=(60, 40), seed=77)
    write_tree(tmp_path, files)

    report = load_dataset(tmp_path, val_fraction=0.2, seed=1).report()

    assert report["layout"] == "folder-per-class"
    assert list(report["classes"]) == ["ant", "zebra"]
    assert report["classes"] == {"ant": 6, "zebra": 5}
    assert report["num_images"] == 11 and report["num_classes"] == 2
    assert set(report["splits"]) == {"train", "val"}
    assert report["splits"]["val"] == {"ant": 1, "zebra": 1}
    assert {name: sum(split[name] for split in report["splits"].values()) for name in report["classes"]} == report[
        "classes"
    ]
    assert report["image_size"] == {"min": [30, 20], "median": [30, 20], "max": [60, 40]}
    assert report["given_splits"] == [] and report["skipped"] == [] and report["warnings"] == []
    assert report["split_settings"] == {"val_fraction": 0.2, "test_fraction": 0.0, "seed": 1}


def test_items_paths_and_integer_labels_agree_with_the_class_order(tmp_path):
    write_tree(tmp_path, class_images(("b", "a"), per_class=4))

    dataset = load_dataset(tmp_path)

    for split in ("train", "val"):
        for path, label in zip(dataset.paths(split), dataset.labels(split)):
            assert path.is_file()
            assert dataset.classes[label] == path.parent.name
    assert dataset.labels("train").dtype == np.int32


def test_pre_split_input_keeps_its_splits_and_carves_val_from_train_only(tmp_path):
    files = {**class_images(per_class=10, prefix="train/"), **class_images(per_class=3, prefix="test/")}
    write_tree(tmp_path, files)

    dataset = load_dataset(tmp_path, val_fraction=0.2, test_fraction=0.3)

    report = dataset.report()
    assert report["layout"] == "pre-split" and report["given_splits"] == ["train", "test"]
    assert report["splits"] == {
        "train": {"cat": 8, "dog": 8}, "val": {"cat": 2, "dog": 2}, "test": {"cat": 3, "dog": 3}
    }
    test_paths = {path.relative_to(tmp_path).as_posix() for path in dataset.paths("test")}
    assert test_paths == {path for path in files if path.startswith("test/")}
    assert all(path.relative_to(tmp_path).parts[0] == "train" for path in dataset.paths("val"))


def test_pre_split_with_all_three_splits_uses_them_as_given(tmp_path):
    files = {**class_images(per_class=4, prefix="train/"), **class_images(per_class=2, prefix="validation/"),
             **class_images(per_class=2, prefix="test/")}
    write_tree(tmp_path, files)

    report = load_dataset(tmp_path, val_fraction=0.5).report()

    assert report["given_splits"] == ["train", "val", "test"]
    assert report["splits"]["train"] == {"cat": 4, "dog": 4}
    assert report["splits"]["val"] == {"cat": 2, "dog": 2}


def test_lone_train_folder_gets_a_val_split_carved_from_it():
    report = load_dataset(zip_bytes(class_images(per_class=5, prefix="data/train/"))).report()

    assert report["layout"] == "pre-split" and report["given_splits"] == ["train"]
    assert report["splits"]["val"] == {"cat": 1, "dog": 1}


@pytest.mark.hostile
def test_messy_zip_with_a_top_folder_loads_and_reports_every_skipped_file():
    files = {f"flowers/{path}": data for path, data in class_images(per_class=3).items()}
    files.update({
        "flowers/README.md": "# flowers",
        "flowers/cat/broken.jpg": image_bytes(fmt="JPEG")[:100],
        "flowers/dog/notes.txt": "not an image",
        "flowers/dog/.DS_Store": b"\0\0\0\1Bud1",
        "__MACOSX/flowers/cat/._0.png": b"\0\5\26\7",
        "../escape.png": image_bytes(),
    })

    report = load_dataset(zip_bytes(files)).report()

    assert report["layout"] == "folder-per-class"
    assert report["classes"] == {"cat": 3, "dog": 3}
    assert report["documentation"] == ["flowers/README.md"]
    reasons = {item["path"]: item["reason"] for item in report["skipped"]}
    assert set(reasons) == {
        "flowers/cat/broken.jpg", "flowers/dog/notes.txt", "flowers/dog/.DS_Store",
        "__MACOSX/flowers/cat/._0.png", "../escape.png",
    }
    assert "truncated" in reasons["flowers/cat/broken.jpg"]
    assert reasons["flowers/dog/notes.txt"] == "not an image file (.txt)"
    assert "__MACOSX" in reasons["__MACOSX/flowers/cat/._0.png"]
    assert reasons["../escape.png"].startswith("unsafe path")
    assert all(reason for reason in reasons.values())


@pytest.mark.hostile
def test_loading_the_same_archive_again_reports_the_same_skipped_entries():
    data = zip_bytes({**class_images(), "../../escape.png": image_bytes(), "cat/x.txt": "x"})

    first, second = load_dataset(data).report(), load_dataset(data).report()

    assert first == second
    assert {item["path"] for item in second["skipped"]} == {"../../escape.png", "cat/x.txt"}


@pytest.mark.hostile
def test_oversized_image_is_skipped_as_a_decompression_bomb(tmp_path):
    write_tree(tmp_path, {**class_images(size=(20, 20)), "dog/huge.png": image_bytes(size=(64, 64))})

    dataset = load_dataset(tmp_path, limits=Limits(max_image_pixels=32 * 32))

    assert [(item.path, "decompression bomb" in item.reason) for item in dataset.skipped] == [("dog/huge.png", True)]
    assert dataset.class_counts() == {"cat": 4, "dog": 4}


@pytest.mark.hostile
def test_corrupt_image_in_a_wrapped_folder_is_reported_with_its_full_path(tmp_path):
    write_tree(tmp_path, {**class_images(prefix="set/"), "set/dog/bad.png": b"\x89PNG\r\n\x1a\n broken"})

    dataset = load_dataset(tmp_path)

    assert [item.path for item in dataset.skipped] == ["set/dog/bad.png"]


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp_path: str(tmp_path / "nonexistent" / "dataset.zip"), "does not exist"),
        (lambda tmp_path: "/dev/null", "is not a regular file"),
        (lambda tmp_path: 42, "cannot load a dataset from a int"),
        (lambda tmp_path: write_tree(tmp_path, {"cat/0.png": b"x", "cat/1.png": b"", "dog/0.png": b"y"}),
         "no readable images"),
    ],
    ids=["missing-path", "device-file", "wrong-type", "folder-of-broken-images"],
)
def test_unusable_input_that_is_not_an_upload_is_a_one_line_tltools_error(tmp_path, make_source, message):
    # Uploaded archives have their own battery: tests/data/test_hostile_uploads.py.
    with pytest.raises(TLToolsError, match=message) as raised:
        load_dataset(make_source(tmp_path))

    assert "\n" not in str(raised.value)


@pytest.mark.hostile
def test_bad_split_settings_are_refused_before_the_archive_is_extracted(monkeypatch):
    def no_extraction(*args, **kwargs):
        raise AssertionError("the archive was extracted")

    monkeypatch.setattr(dataset_module, "extract_zip", no_extraction)

    with pytest.raises(TLToolsError, match="val_fraction"):
        load_dataset(zip_bytes(class_images()), val_fraction=1.5)


@pytest.mark.hostile
def test_a_refused_upload_is_removed_and_not_listed_among_earlier_uploads(datasets_listing):
    before = datasets_listing()

    with pytest.raises(TLToolsError, match="only one class"):
        load_dataset(UploadedFile(zip_bytes(class_images(("cat",))), "one class.zip"))

    assert datasets_listing() == before
    assert "one class.zip" not in [upload.source for upload in list_uploaded_datasets()]


def test_an_earlier_extraction_is_reused_even_without_its_manifest():
    data = zip_bytes({**class_images(), "../escape.png": image_bytes()})
    first = load_dataset(data)
    manifest = first.root.with_name(first.root.name + ".json")
    manifest.unlink()  # as if the process died between extracting and writing the manifest

    again = load_dataset(data)

    assert again.root == first.root and again.report()["skipped"] == first.report()["skipped"]
    assert manifest.is_file()


@pytest.mark.hostile
@pytest.mark.parametrize(("val", "test"), [(1.2, 0.0), (0.0, -0.5), (0.6, 0.4)])
def test_bad_fractions_are_a_tltools_error(tmp_path, val, test):
    write_tree(tmp_path, class_images())

    with pytest.raises(TLToolsError, match="fraction"):
        load_dataset(tmp_path, val_fraction=val, test_fraction=test)


def test_strong_class_imbalance_is_a_warning_not_a_failure(tmp_path):
    write_tree(tmp_path, {**class_images(("many",), per_class=9), **class_images(("few",), per_class=3)})

    dataset = load_dataset(tmp_path)

    assert len(dataset.items) == 12
    assert any("imbalanced" in warning and "'many'" in warning and "'few'" in warning for warning in dataset.warnings)


def test_mild_imbalance_is_not_warned_about(tmp_path):
    write_tree(tmp_path, {**class_images(("many",), per_class=5), **class_images(("few",), per_class=3)})

    assert not any("imbalanced" in warning for warning in load_dataset(tmp_path).warnings)


def _distinct_splits(**per_split: int) -> dict[str, bytes]:
    """Pre-split files whose images all differ (class_images repeats its images under each prefix)."""
    return {
        f"{split}/{label}/{n}.png": image_bytes(seed=10_000 * s + 100 * c + n)
        for s, (split, count) in enumerate(per_split.items())
        for c, label in enumerate(("cat", "dog"))
        for n in range(count)
    }


def test_identical_image_in_two_splits_is_a_leakage_warning(tmp_path):
    files = _distinct_splits(train=4, test=2)
    files["test/dog/copy.png"] = files["train/dog/1.png"]
    write_tree(tmp_path, files)

    dataset = load_dataset(tmp_path, val_fraction=0.0)

    leaks = [warning for warning in dataset.warnings if "identical image" in warning]
    assert len(leaks) == 1 and "train/dog/1.png" in leaks[0] and "test/dog/copy.png" in leaks[0]
    assert leaks[0].startswith("1 identical image(s)")


def test_identical_images_within_one_split_are_not_a_leakage_warning(tmp_path):
    files = _distinct_splits(train=4, val=2, test=2)
    files["train/dog/copy.png"] = files["train/dog/1.png"]
    write_tree(tmp_path, files)

    assert not any("identical image" in warning for warning in load_dataset(tmp_path).warnings)


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one(tmp_path):
    write_tree(tmp_path, class_images(per_class=20))

    first, again, other = (load_dataset(tmp_path, seed=seed) for seed in (5, 5, 6))

    assert list(first.items["split"]) == list(again.items["split"])
    assert list(first.items["split"]) != list(other.items["split"])
    assert first.fingerprint == other.fingerprint


def test_with_splits_resplits_without_reading_any_image_again(tmp_path, monkeypatch):
    write_tree(tmp_path, class_images(per_class=20))
    dataset = load_dataset(tmp_path, val_fraction=0.2, seed=1)
    original = list(dataset.items["split"])

    def no_reading(*args, **kwargs):
        raise AssertionError("an image was read again")

    monkeypatch.setattr(ingest, "open_rgb", no_reading)
    monkeypatch.setattr(ingest, "_check_one", no_reading)
    resplit = dataset.with_splits(val_fraction=0.3, test_fraction=0.1, seed=2)

    assert resplit.report()["splits"]["val"] == {"cat": 6, "dog": 6}
    assert resplit.report()["splits"]["test"] == {"cat": 2, "dog": 2}
    assert list(dataset.items["split"]) == original  # the original dataset is untouched
    assert list(dataset.with_splits(val_fraction=0.2, test_fraction=0.0, seed=1).items["split"]) == original


def test_with_splits_recomputes_the_leakage_warning(tmp_path):
    files = class_images(per_class=6)
    files["cat/copy.png"] = files["cat/0.png"]
    write_tree(tmp_path, files)
    dataset = load_dataset(tmp_path, val_fraction=0.0)

    def leaks(resplit) -> bool:
        return any("identical image" in warning for warning in resplit.warnings)

    assert not leaks(dataset)  # both copies in train
    assert any(leaks(dataset.with_splits(val_fraction=0.4, test_fraction=0.0, seed=seed)) for seed in range(10))


def test_with_splits_refuses_bad_fractions(tmp_path):
    write_tree(tmp_path, class_images())

    with pytest.raises(TLToolsError, match="val_fraction"):
        load_dataset(tmp_path).with_splits(val_fraction=1.5, test_fraction=0.0, seed=0)


def test_progress_reports_extraction_and_every_checked_image():
    calls = []

    load_dataset(zip_bytes(class_images(per_class=3)), on_progress=lambda *call: calls.append(call))

    assert ("extracting", 1, 1) in calls
    assert [call for call in calls if call[0] == "checking images"][-1] == ("checking images", 6, 6)


def test_a_training_config_is_the_split_settings_of_load_and_resplit(tmp_path):
    from tltools.training import TrainConfig

    write_tree(tmp_path, class_images(per_class=20))
    config = TrainConfig(val_fraction=0.3, test_fraction=0.1, seed=4)
    dataset = load_dataset(tmp_path, split=config)

    assert dataset.split_settings == config.split_settings
    assert dataset.report()["splits"]["test"] == {"cat": 2, "dog": 2}
    assert dataset.with_splits(config) is dataset  # already split so: nothing is drawn again
    other = dataset.with_splits(config.replace(seed=5))
    assert other.seed == 5 and list(other.items["split"]) != list(dataset.items["split"])
