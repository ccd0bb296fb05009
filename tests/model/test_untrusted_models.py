"""Hostile and broken model files: each is refused with one clear line, and no code in it runs.

The models are tiny (32 px, a few layers) and built here. A Lambda layer's
payload writes a marker file when it runs; a control test shows that Keras
with safe mode off does run it, so "the marker does not exist" means the
payload really was not executed.
"""

import io
import json
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from tests.factories import image_bytes
from tltools.errors import TLToolsError
from tltools.model import load_model, save_model
from tltools.model.screening import check_model_config
from tltools.training.optimizers import make_optimizer

CLASSES = ["cat", "dog"]


def tiny(*middle: keras.layers.Layer) -> keras.Model:
    """A 32-px two-class classifier with ``middle`` layers between a convolution and the head."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    for layer in middle:
        x = layer(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(x), name="tiny")


def payload(marker: Path) -> keras.layers.Lambda:
    """A Lambda layer that creates ``marker`` whenever its function runs."""
    target = str(marker)
    return keras.layers.Lambda(lambda x: (open(target, "w").close(), x)[1], name="payload")


class Doubler(keras.layers.Layer):
    """A custom layer (not registered), as a user's own code would define one."""

    def call(self, x):
        return x * 2


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def forbid_keras_loading(monkeypatch):
    """Call it to fail the test if, from then on, tltools hands a file to Keras' deserializer at all."""
    def refuse(*args, **kwargs):
        raise AssertionError("Keras was asked to deserialize a file that should have been refused first")

    def forbid():
        monkeypatch.setattr(keras.saving, "load_model", refuse)
        monkeypatch.setattr(legacy_h5_format, "load_model_from_hdf5", refuse)

    return forbid


@pytest.fixture
def lambda_files(tmp_path, marker):
    """A .keras and an .h5 model with the marker-writing Lambda layer, the marker removed after saving."""
    model = tiny(payload(marker))
    files = {suffix: tmp_path / f"lambda{suffix}" for suffix in (".keras", ".h5")}
    for path in files.values():
        model.save(path)
    marker.unlink()  # building the model ran the payload once
    return files


@pytest.fixture
def saved_tiny(tmp_path) -> Path:
    return save_model(tiny(), tmp_path / "tiny.keras", CLASSES)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def rewrite_archive(source: Path, target: Path, changes: dict[str, bytes | None], **zip_options) -> Path:
    """Copy a .keras zip, replacing (bytes), dropping (None) or adding members."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", **zip_options) as new:
        for item in old.infolist():
            if item.filename not in changes:
                new.writestr(item.filename, old.read(item))
        for name, data in changes.items():
            if data is not None:
                new.writestr(name, data)
    return target


def edited_config(source: Path, target: Path, edit) -> Path:
    """Copy a .keras file with ``edit(config)`` applied to its config.json."""
    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
    edit(config)
    return rewrite_archive(source, target, {"config.json": json.dumps(config).encode()})


def layer_config(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == name)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_control_keras_without_safe_mode_runs_the_payload(lambda_files, marker, suffix):
    keras.saving.load_model(lambda_files[suffix], safe_mode=False)

    assert marker.exists()


@pytest.mark.hostile
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_before_keras_sees_the_file_and_nothing_runs(
        lambda_files, marker, forbid_keras_loading, suffix):
    forbid_keras_loading()
    with pytest.raises(TLToolsError) as error:
        load_model(lambda_files[suffix])

    message = one_line(error)
    assert f"lambda{suffix} contains a Lambda layer ('payload'), which carries Python code" in message
    assert "tltools does not run code from model files" in message
    assert not marker.exists()


@pytest.mark.hostile
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_safe_mode_alone_also_refuses_the_lambda(lambda_files, marker, suffix):
    with pytest.raises(ValueError, match="deserialization of a `Lambda` layer"):
        keras.saving.load_model(lambda_files[suffix], safe_mode=True)

    assert not marker.exists()


@pytest.mark.hostile
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_an_unknown_custom_class_is_refused(tmp_path, forbid_keras_loading, suffix):
    path = tmp_path / f"custom{suffix}"
    tiny(Doubler(name="doubler")).save(path)
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    message = one_line(error)
    assert "'Doubler'" in message and "tltools loads only built-in Keras layers" in message


@pytest.mark.hostile
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_custom_class_registered_in_this_process_is_refused_all_the_same(
        tmp_path, marker, forbid_keras_loading, suffix):
    target = str(marker)

    class Touch(keras.layers.Layer):
        def call(self, x):
            open(target, "w").close()
            return x

    registered = keras.saving.register_keras_serializable(package="evil")(Touch)
    try:
        path = tmp_path / f"registered{suffix}"
        tiny(registered(name="touch")).save(path)
        marker.unlink(missing_ok=True)
        forbid_keras_loading()

        with pytest.raises(TLToolsError) as error:
            load_model(path)
    finally:
        keras.saving.get_custom_objects().pop("evil>Touch", None)

    message = one_line(error)
    assert "'evil>Touch'" in message and "tltools loads only built-in Keras layers" in message
    assert not marker.exists()


def _module_os(config):
    layer_config(config, "head").update(module="os", class_name="system", config="touch payload-ran")


def _keras_module_not_a_class(config):
    layer_config(config, "head").update(module="keras.src.utils.file_utils", class_name="get_file")


def _unknown_keras_class(config):
    layer_config(config, "head").update(class_name="Teleport")


def _custom_registered_name(config):
    layer_config(config, "head")["registered_name"] = "evil>Dense"


def _builtin_eval_as_activation(config):
    layer_config(config, "head")["config"]["activation"] = {
        "module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"}


def _lambda_bytecode(config):
    layer_config(config, "head")["config"]["activation"] = {
        "class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}


def _savedmodel_layer(config):
    layer_config(config, "pool").update(class_name="TFSMLayer", config={"name": "pool", "filepath": "/etc"})


@pytest.mark.hostile
@pytest.mark.parametrize(("edit", "expected"), [
    (_module_os, "names 'system' from module 'os', outside Keras"),
    (_keras_module_not_a_class, "uses 'get_file' in 'keras.src.utils.file_utils', which is not one of Keras' own"),
    (_unknown_keras_class, "uses 'Teleport' in 'keras.layers', which is not one of Keras' own classes"),
    (_custom_registered_name, "uses the custom object 'evil>Dense'"),
    (_builtin_eval_as_activation, "refers to the function 'eval' (module 'builtins'), not one of Keras' own"),
    (_lambda_bytecode, "contains Python bytecode (a serialized lambda)"),
    (_savedmodel_layer, "contains a TFSMLayer layer ('pool'), which loads a TensorFlow SavedModel"),
], ids=lambda value: getattr(value, "__name__", "")[1:] or None)
def test_a_tampered_config_json_is_refused(saved_tiny, tmp_path, forbid_keras_loading, edit, expected):
    path = edited_config(saved_tiny, tmp_path / "tampered.keras", edit)
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert expected in one_line(error)
    assert not list(Path().glob("payload-ran")) and not list(tmp_path.glob("payload-ran"))


@pytest.mark.hostile
def test_a_tampered_h5_training_config_is_refused(tmp_path, forbid_keras_loading):
    path = tmp_path / "trained.h5"
    model = tiny()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    save_model(model, path, CLASSES)
    with h5py.File(path, "a") as file:
        training = json.loads(file.attrs["training_config"])
        training["loss"] = {"class_name": "StealData", "config": {}}
        file.attrs["training_config"] = json.dumps(training)
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert "uses 'StealData', which is not one of Keras' own classes" in one_line(error)


def _truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.hostile
@pytest.mark.parametrize(("name", "content", "expected"), [
    ("photo.keras", "png", "is not a Keras model file"),
    ("photo.h5", "png", "is not a Keras model file"),
    ("empty.keras", b"", "is not a Keras model file"),
    ("empty.h5", b"", "is not a Keras model file"),
    ("truncated.keras", "truncated", "is not a Keras model file"),
    ("truncated.h5", "truncated", "is not a Keras model file"),
    ("zip-as.h5", "zip", "is not a Keras model file"),
])
def test_files_that_are_not_models_get_a_clear_error(saved_tiny, tmp_path, name, content, expected):
    if content == "png":
        content = image_bytes()
    elif content == "truncated":
        whole = saved_tiny if name.endswith(".keras") else save_model(tiny(), tmp_path / "whole.h5", CLASSES)
        content = _truncated(whole)
    elif content == "zip":
        content = saved_tiny.read_bytes()
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert expected in one_line(error) and name in str(error.value)


@pytest.mark.hostile
@pytest.mark.parametrize(("changes", "expected"), [
    ({"config.json": b"{not json"}, r"\(config.json\) is not JSON text"),
    ({"config.json": b"[1, 2, 3]"}, r"\(config.json\) is not a JSON object"),
    ({"config.json": b"[" * 100_000 + b"]" * 100_000}, r"\(config.json\) is not JSON text"),
    ({"config.json": b"\xff\xfe not utf-8"}, r"\(config.json\) is not JSON text"),
    ({"model.weights.h5": None}, "could not load the model in .*Expected a model.weights.h5"),
    ({"model.weights.h5": b"garbage"}, "is not a Keras model file, or is damaged"),
    ({"../../outside.sh": b"echo hi"}, r"holds '../../outside.sh', which does not belong in a Keras model file"),
])
def test_a_damaged_keras_archive_gets_a_clear_error(saved_tiny, tmp_path, changes, expected):
    path = rewrite_archive(saved_tiny, tmp_path / "damaged.keras", changes)

    with pytest.raises(TLToolsError, match=expected) as error:
        load_model(path)

    one_line(error)
    assert not (tmp_path.parent / "outside.sh").exists()


def _weights_with_an_external_link(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        buffer = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(buffer, "a") as weights:
        weights["stolen"] = h5py.ExternalLink("/etc/hostname", "/")
    return buffer.getvalue()


@pytest.mark.hostile
def test_keras_weights_linking_to_another_file_are_refused(saved_tiny, tmp_path, forbid_keras_loading):
    path = rewrite_archive(saved_tiny, tmp_path / "linked.keras",
                           {"model.weights.h5": _weights_with_an_external_link(saved_tiny)})
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert "links its object 'stolen' to another file ('/etc/hostname')" in one_line(error)


@pytest.mark.hostile
def test_an_h5_model_reading_another_files_bytes_is_refused(tmp_path, forbid_keras_loading):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(8, dtype="float32").tobytes())
    path = save_model(tiny(), tmp_path / "external.h5", CLASSES)
    with h5py.File(path, "a") as file:
        file.create_dataset("leak", shape=(8,), dtype="float32", external=[(str(secret), 0, 32)])
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert "dataset 'leak' is stored in external files" in one_line(error)


@pytest.mark.hostile
def test_a_model_file_over_the_size_limit_is_refused_naming_size_limit_and_variable(
        saved_tiny, monkeypatch, forbid_keras_loading):
    monkeypatch.setenv("TLTOOLS_MAX_MODEL_BYTES", "1000")
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(saved_tiny)

    message = one_line(error)
    size = saved_tiny.stat().st_size
    assert f" KiB ({size:,} bytes), over the 1,000 bytes limit for model and weights files" in message
    assert "TLTOOLS_MAX_MODEL_BYTES" in message


@pytest.mark.hostile
def test_a_small_keras_file_that_unpacks_over_the_limit_is_refused(saved_tiny, tmp_path, monkeypatch,
                                                                    forbid_keras_loading):
    with zipfile.ZipFile(saved_tiny) as archive:
        padded = archive.read("config.json") + b" " * 3_000_000  # JSON allows trailing blanks; deflates to ~3 KB
    path = rewrite_archive(saved_tiny, tmp_path / "bomb.keras", {"config.json": padded},
                           compression=zipfile.ZIP_DEFLATED)
    monkeypatch.setenv("TLTOOLS_MAX_MODEL_BYTES", str(2_000_000))
    assert path.stat().st_size < 2_000_000
    forbid_keras_loading()

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert "bomb.keras unpacked is 2.9 MiB" in one_line(error) and "over the 1.9 MiB" in str(error.value)


@pytest.mark.hostile
def test_a_model_that_is_not_an_image_classifier_is_refused(tmp_path):
    inputs = keras.Input((32, 32, 3))
    path = tmp_path / "maps.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(path)

    with pytest.raises(TLToolsError) as error:
        load_model(path)

    assert "is not an image classifier tltools can use" in one_line(error)
    assert "output shape (None, 30, 30, 2)" in str(error.value)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.slow
def test_compiled_models_as_training_saves_them_still_load(tmp_path, optimizer, suffix):
    model = tiny(keras.layers.Rescaling(1 / 128, -1, name="scale"), keras.layers.BatchNormalization(name="bn"))
    model.compile(optimizer=make_optimizer(optimizer, 1e-3),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    model.train_on_batch(np.zeros((2, 32, 32, 3)), np.eye(2))  # builds the optimizer's variables, as fit does

    loaded, names, _ = load_model(save_model(model, tmp_path / f"tiny{suffix}", CLASSES))

    assert names == CLASSES and loaded.count_params() == model.count_params()


# Backbones save_model refuses to store as .h5: Keras' legacy loader cannot rebuild them.
NOT_IN_H5 = {"mobilenet_v3_small", "mobilenet_v3_large", "convnext_tiny"}


@pytest.mark.slow
def test_every_backbone_passes_the_screening_in_both_formats(registry_model):
    from keras.src.legacy.saving import json_utils, saving_options, saving_utils

    from tltools.backbones import list_backbones

    for spec in list_backbones():
        model = registry_model(spec.name)
        check_model_config(json.loads(model.to_json()), f"{spec.name}.keras")
        if spec.name in NOT_IN_H5:
            continue
        with saving_options.keras_option_scope(use_legacy_config=True):
            legacy = saving_utils.model_metadata(model, include_optimizer=False)["model_config"]
        check_model_config(json.loads(json.dumps(legacy, default=json_utils.get_json_type)), f"{spec.name}.h5")


@pytest.mark.hostile
@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_the_cli_refuses_a_lambda_model_with_one_error_line_and_status_2(
        lambda_files, marker, tmp_path, capsys, command):
    from tltools.cli import main

    image = tmp_path / "cat.png"
    image.write_bytes(image_bytes())
    arguments = {"predict": [str(image)], "evaluate": [str(tmp_path)],
                 "export": ["--format", "keras", "--out", str(tmp_path / "out.keras")]}[command]

    status = main([command, str(lambda_files[".h5"]), *arguments])

    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "contains a Lambda layer ('payload')" in err
    assert not marker.exists() and not (tmp_path / "out.keras").exists()
