"""Keras, HDF5 and SavedModel exports load back and predict like the Keras model; export_run and its errors."""

import dataclasses
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from tests.export.helpers import CLASSES, SIZE, train_paths
from tltools.errors import TLToolsError
from tltools.export import FORMATS, export_file, export_model, export_run
from tltools.export import formats as formats_module
from tltools.export.run import CHECK_SIZE, SAMPLE_SIZE, training_images
from tltools.model import load_model
from tltools.runs import read_run

pytestmark = pytest.mark.slow  # builds, trains or exports real models


@pytest.fixture(scope="module")
def exports(tmp_path_factory, model, images):
    """The keras, h5 and savedmodel exports of the model, each checked on the training images."""
    folder = tmp_path_factory.mktemp("exports")
    suffixes = {"keras": ".keras", "h5": ".h5", "savedmodel": ".zip"}
    return {
        fmt: export_model(model, CLASSES, fmt, folder / f"model{suffix}", check_images=images)
        for fmt, suffix in suffixes.items()
    }


def test_the_test_model_is_not_trivial(expected):
    assert expected.std(axis=0).max() > 0.01
    assert len(set(expected.argmax(axis=1))) > 1


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_keras_and_h5_load_back_with_class_names_and_the_same_predictions(exports, images, expected, fmt):
    result = exports[fmt]
    loaded, names, metadata = load_model(result.path)
    assert names == CLASSES
    assert metadata["backbone"] == "efficientnet_lite0" and metadata["input_size"] == SIZE
    np.testing.assert_allclose(loaded.predict(images.astype("float32"), verbose=0), expected, atol=1e-6)
    assert result.check == {"max_prob_diff": pytest.approx(0, abs=1e-6), "top1_agreement": 1.0, "images": len(images)}
    assert result.size_bytes == result.path.stat().st_size > 0
    assert result.notes == ()


def test_savedmodel_zip_holds_labels_and_serves_like_keras(exports, images, expected, tmp_path):
    result = exports["savedmodel"]
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        assert archive.read("labels.txt").decode() == "a\nb\nc\n"
        archive.extractall(tmp_path)
    assert {"saved_model.pb", "labels.txt"} <= names and any(name.startswith("variables/") for name in names)
    loaded = tf.saved_model.load(str(tmp_path))
    np.testing.assert_allclose(loaded.serve(tf.constant(images, tf.float32)).numpy(), expected, atol=1e-5)
    served = loaded.signatures["serving_default"](tf.constant(images, tf.float32))
    np.testing.assert_allclose(next(iter(served.values())).numpy(), expected, atol=1e-5)
    assert result.check["max_prob_diff"] <= 1e-5 and result.check["top1_agreement"] == 1.0


def test_no_check_images_means_no_check(model, tmp_path):
    result = export_model(model, CLASSES, "keras", tmp_path / "model.keras")
    assert result.check is None and result.path.is_file()


def test_an_export_that_disagrees_is_refused_and_the_old_file_kept(model, images, tmp_path, monkeypatch):
    def shifted(path, batch):
        return np.roll(model.predict(batch.astype("float32"), verbose=0), 1, axis=1)

    broken = dataclasses.replace(FORMATS["keras"], predict=shifted)
    monkeypatch.setitem(formats_module.FORMATS, "keras", broken)
    target = tmp_path / "model.keras"
    target.write_bytes(b"the previous export")
    with pytest.raises(TLToolsError, match=r"keras export disagrees .* over the limit 1e-06; it was not written"):
        export_model(model, CLASSES, "keras", target, check_images=images)
    assert target.read_bytes() == b"the previous export"
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]


def test_unknown_format_lists_the_valid_ones(model, tmp_path):
    with pytest.raises(TLToolsError, match=r"unknown export format 'coreml'; use one of: keras, h5, savedmodel, tflite,"):
        export_model(model, CLASSES, "coreml", tmp_path / "model.mlmodel")


@pytest.mark.parametrize(("fmt", "name"), [("keras", "model.h5"), ("tflite-int8", "model.zip"), ("bundle", "model")])
def test_a_path_with_the_wrong_suffix_is_refused(model, tmp_path, fmt, name):
    with pytest.raises(TLToolsError, match=f"the {fmt} export is a"):
        export_model(model, CLASSES, fmt, tmp_path / name)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 32, 32, 3), np.uint8),
        np.zeros((2, SIZE, SIZE, 3), np.float32),
        np.zeros((0, SIZE, SIZE, 3), np.uint8),
    ],
    ids=["wrong-size", "float", "empty"],
)
def test_unusable_check_images_are_refused(model, tmp_path, bad):
    with pytest.raises(TLToolsError, match=rf"check_images must be a non-empty uint8 array of shape \(N, {SIZE}"):
        export_model(model, CLASSES, "keras", tmp_path / "model.keras", check_images=bad)


def test_class_names_must_fit_the_model(model, tmp_path):
    with pytest.raises(TLToolsError, match="2 class names given for a model with 3 outputs"):
        export_model(model, ["a", "b"], "keras", tmp_path / "model.keras")


def test_int8_without_representative_images_is_refused(model, tmp_path):
    with pytest.raises(TLToolsError, match="tflite-int8 export needs representative training images"):
        export_model(model, CLASSES, "tflite-int8", tmp_path / "model.tflite")


def test_training_images_are_a_seeded_sample_of_the_train_split(run):
    paths, problem = training_images(read_run(run))
    assert problem is None
    assert sorted(paths) == sorted(train_paths(run.parent / "images"))
    assert paths == training_images(read_run(run))[0] and len(paths) <= SAMPLE_SIZE


def test_export_run_checks_on_training_images_and_keeps_the_run_facts(run, tmp_path):
    result = export_run(run, "keras", tmp_path / "model.keras")
    assert result.check["images"] == min(CHECK_SIZE, len(train_paths(run.parent / "images")))
    assert result.check["max_prob_diff"] <= 1e-6 and result.notes == ()
    _, names, metadata = load_model(result.path)
    assert names == CLASSES
    assert metadata["config"]["epochs"] == 3 and metadata["metrics"]["val"]["accuracy"] == 0.8125
    assert metadata["dataset"] == {"name": "images", "images per split": {"train": 12, "val": 3}}


@pytest.fixture
def run_without_images(run, tmp_path):
    """A copy of the run whose dataset folder no longer exists."""
    copy = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("exports"))  # none kept yet
    (copy / "dataset.json").write_text('{"root": "%s"}' % (tmp_path / "deleted-images"))
    return copy


def test_without_training_images_other_formats_are_written_unchecked_and_say_so(run_without_images, tmp_path):
    result = export_run(run_without_images, "keras", tmp_path / "model.keras")
    assert result.check is None and result.path.is_file()
    assert result.notes == (f"not checked: its 12 training images are gone from {tmp_path / 'deleted-images'} or changed",)


def test_a_folder_of_images_stands_in_for_the_runs_missing_ones(run_without_images, run, tmp_path):
    result = export_run(run_without_images, "keras", tmp_path / "model.keras", images_dir=run.parent / "images" / "a")
    assert result.check["images"] == 5 and result.check["max_prob_diff"] <= 1e-6 and result.notes == ()


def test_int8_without_training_images_is_a_clear_error(run_without_images, tmp_path):
    message = r"tflite-int8 export needs the run's training images .* are gone from .*--images DIR"
    with pytest.raises(TLToolsError, match=message):
        export_run(run_without_images, "tflite-int8", tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()


def test_int8_of_a_model_file_without_images_is_a_clear_error(run, tmp_path):
    with pytest.raises(TLToolsError, match=r"model file .* needs representative images .*--images DIR"):
        export_file(run / "model.keras", "tflite-int8", tmp_path / "model.tflite")


def test_a_model_file_exports_unchecked_without_images(run, tmp_path):
    result = export_file(run / "model.keras", "h5", tmp_path / "model.h5")
    assert result.check is None and result.notes == ("not checked: no images were given to check it on",)
    assert load_model(result.path)[1] == CLASSES


def test_an_empty_image_folder_is_refused(run, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TLToolsError, match="no image files below"):
        export_file(run / "model.keras", "keras", tmp_path / "model.keras", images_dir=tmp_path / "empty")
