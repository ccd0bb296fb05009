"""Saving and loading models with their class names, in .keras and .h5."""

import json
import zipfile

import h5py
import keras
import numpy as np
import pytest

from tltools.backbones import preprocessing_layer
from tltools.errors import TLToolsError
from tltools.model import build_model, load_model, save_model, unfreeze_from_block, unfreeze_top

CLASSES = ["daisy", "rose", "tulip"]


@pytest.fixture(scope="module")
def model():
    return build_model("efficientnet_lite0", CLASSES, weights="none", input_size=64)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")


def predict(model, pixels):
    return keras.ops.convert_to_numpy(model(pixels, training=False))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.slow
def test_model_round_trips_with_class_names_and_metadata(model, pixels, tmp_path, suffix):
    path = save_model(model, tmp_path / f"flowers{suffix}", CLASSES, {"epochs": 3, "val_accuracy": 0.91})

    loaded, class_names, metadata = load_model(path)

    assert class_names == CLASSES
    assert metadata["epochs"] == 3 and metadata["val_accuracy"] == 0.91
    assert metadata["backbone"] == "efficientnet_lite0"
    assert metadata["input_size"] == 64
    assert metadata["preprocessing"] == "(x-127)/128"
    np.testing.assert_allclose(predict(loaded, pixels), predict(model, pixels), atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.slow
def test_saved_file_still_loads_with_plain_keras_in_safe_mode(model, pixels, tmp_path, suffix):
    path = save_model(model, tmp_path / f"flowers{suffix}", CLASSES)

    plain = keras.saving.load_model(path, safe_mode=True)

    np.testing.assert_allclose(predict(plain, pixels), predict(model, pixels), atol=1e-6)


def test_keras_file_carries_class_names_in_its_own_member(model, tmp_path):
    path = save_model(model, tmp_path / "flowers.keras", CLASSES)

    with zipfile.ZipFile(path) as archive:
        info = json.loads(archive.read("tltools.json"))

    assert info["class_names"] == CLASSES


def test_h5_file_carries_class_names_as_a_root_attribute(model, tmp_path):
    path = save_model(model, tmp_path / "flowers.h5", CLASSES)

    with h5py.File(path, "r") as file:
        info = json.loads(file.attrs["tltools"])

    assert info["class_names"] == CLASSES


@pytest.mark.slow
def test_a_run_folder_loads_its_model_keras(model, tmp_path):
    save_model(model, tmp_path / "run-1" / "model.keras", CLASSES)

    _, class_names, _ = load_model(tmp_path / "run-1")

    assert class_names == CLASSES


@pytest.mark.slow
def test_saving_replaces_an_existing_file_and_leaves_no_temporary_files(model, tmp_path):
    path = tmp_path / "flowers.keras"
    save_model(model, path, CLASSES)

    save_model(model, path, ["a", "b", "c"])

    assert [p.name for p in tmp_path.iterdir()] == ["flowers.keras"]
    assert load_model(path)[1] == ["a", "b", "c"]


@pytest.mark.slow
def test_a_failed_save_keeps_the_previous_file(model, tmp_path):
    path = tmp_path / "flowers.keras"
    save_model(model, path, CLASSES)

    with pytest.raises(TLToolsError, match="metadata value .*not JSON-serialisable"):
        save_model(model, path, CLASSES, {"when": object()})

    assert [p.name for p in tmp_path.iterdir()] == ["flowers.keras"]
    assert load_model(path)[1] == CLASSES


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["daisy", "rose"], "2 class names given for a model with 3 outputs"),
        (["daisy", "rose", "rose"], "unique"),
        (["daisy", "", "tulip"], "non-empty strings"),
        ("daisy", "list of strings"),
    ],
)
def test_class_names_that_do_not_fit_are_refused(model, tmp_path, names, message):
    with pytest.raises(TLToolsError, match=message):
        save_model(model, tmp_path / "flowers.keras", names)


def test_unsupported_suffix_is_refused(model, tmp_path):
    with pytest.raises(TLToolsError, match=r"must end in .keras or .h5; got '.pb'"):
        save_model(model, tmp_path / "flowers.pb", CLASSES)


def test_backbones_the_h5_format_cannot_hold_are_refused_at_save_time(tmp_path):
    v3 = build_model("mobilenet_v3_small", 2, weights="none", input_size=64)

    with pytest.raises(TLToolsError, match="cannot be stored in the legacy .h5 format.*save it as .keras"):
        save_model(v3, tmp_path / "v3.h5", ["a", "b"])

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rule", ["caffe", "torch", "[-1,1]"])
def test_preprocessing_layers_survive_a_safe_mode_round_trip(rule, pixels, tmp_path):
    inputs = keras.Input((64, 64, 3))
    x = preprocessing_layer(rule)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    tiny = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))

    loaded, _, _ = load_model(save_model(tiny, tmp_path / "tiny.keras", ["a", "b"]))

    np.testing.assert_allclose(predict(loaded, pixels), predict(tiny, pixels), atol=1e-6)


@pytest.mark.slow
def test_plain_keras_model_loads_with_generic_class_names_and_a_warning(model, tmp_path):
    path = tmp_path / "plain.keras"
    model.save(path)

    with pytest.warns(UserWarning, match="has no class names.*class_0..class_2"):
        _, class_names, metadata = load_model(path)

    assert class_names == ["class_0", "class_1", "class_2"]
    assert metadata == {}


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(TLToolsError, match="model file not found: .*nothing.keras"):
        load_model(tmp_path / "nothing.keras")


def test_folder_without_a_model_is_reported(tmp_path):
    with pytest.raises(TLToolsError, match="model file not found: .*model.keras"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.keras", b"hello", "not a Keras model file"),
        ("photos.keras", None, r"zip file but not a Keras model \(no config.json\)"),
        ("notes.h5", b"hello", "not a Keras model file"),
    ],
)
def test_a_file_that_is_not_a_keras_model_is_refused(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("cat.jpg", b"...")
    else:
        path.write_bytes(content)

    with pytest.raises(TLToolsError, match=message):
        load_model(path)


def test_hdf5_file_without_a_model_is_refused(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as file:
        file["x"] = np.zeros(3)

    with pytest.raises(TLToolsError, match=r"HDF5 file but not a Keras model \(no model_config\)"):
        load_model(path)


@pytest.mark.slow
def test_damaged_class_names_are_reported(model, tmp_path):
    path = save_model(model, tmp_path / "flowers.keras", CLASSES)
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item) if item.filename != "tltools.json" else b'{"class_names": ["only one"]}'
            target.writestr(item, data)

    with pytest.raises(TLToolsError, match="1 class names given for a model with 3 outputs"):
        load_model(damaged)


@pytest.mark.slow
def test_trainability_survives_a_round_trip_and_a_loaded_model_can_be_unfrozen(tmp_path):
    model = build_model("efficientnet_lite0", CLASSES, weights="none", input_size=64)
    unfreeze_top(model, 4)
    trainable = [w.path for w in model.trainable_weights]

    loaded, _, _ = load_model(save_model(model, tmp_path / "flowers.keras", CLASSES))

    assert [w.path for w in loaded.trainable_weights] == trainable
    unfreeze_from_block(loaded, 7)
    assert len(loaded.trainable_weights) > len(trainable)
