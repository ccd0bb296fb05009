"""Hostile and broken weights files for a backbone: each ends in one clear line, nothing is half-loaded.

EfficientNet-Lite0 at 64 px is the backbone; the files are built here.
"""

import re
import shutil

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from tltools.backbones import create_backbone
from tltools.errors import TLToolsError
from tltools.model import build_model, save_model

BACKBONE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def lite0_file(tmp_path_factory):
    """A weights file of a randomly initialised Lite0 base saved at 96 px, with its weights."""
    base = create_backbone(BACKBONE, weights="none", input_size=96)
    path = tmp_path_factory.mktemp("weights") / "lite0.weights.h5"
    base.save_weights(path)
    return path, [w.numpy() for w in base.weights]


@pytest.fixture(scope="module")
def other_base():
    """Another backbone: MobileNetV2, whose arrays partly have shapes Lite0 lacks and lacks some of Lite0's."""
    return create_backbone("mobilenet_v2", weights="none", input_size=64)


def refused(path) -> str:
    """Build Lite0 from ``path``, which must fail with one line; return it."""
    with pytest.raises(TLToolsError) as error:
        create_backbone(BACKBONE, weights=path, input_size=64)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_weights_saved_at_another_input_size_fit(lite0_file):
    path, saved = lite0_file

    base = create_backbone(BACKBONE, weights=path, input_size=64)  # convolution weights do not depend on the size

    assert all(np.array_equal(w.numpy(), s) for w, s in zip(base.weights, saved, strict=True))


@pytest.mark.hostile
def test_keras3_weights_of_another_backbone_name_expected_and_found_shapes(other_base, tmp_path):
    path = tmp_path / "mobilenet_v2.weights.h5"
    other_base.save_weights(path)

    message = refused(path)

    assert re.search(r"does not fit efficientnet_lite0 \(\d+ arrays expected, \d+ found\)", message)
    assert re.search(r"Expected but not in the file: \S+ \([\d, ]+\)", message)
    assert re.search(r"In the file but not expected: \S+ \([\d, ]+\)", message)


@pytest.mark.hostile
def test_legacy_h5_weights_of_another_backbone_name_expected_and_found_shapes(other_base, tmp_path):
    path = tmp_path / "mobilenet_v2_keras2.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, other_base)

    message = refused(path)

    assert re.search(r"does not fit efficientnet_lite0 \(\d+ arrays expected, \d+ found\)", message)
    assert "Expected but not in the file: block3a_dwconv/kernel (5, 5, 144, 1)" in message  # Lite0's, not V2's
    assert re.search(r"In the file but not expected: \S+/\S+ \([\d, ]+\)", message)


@pytest.mark.hostile
@pytest.mark.slow
def test_a_whole_model_file_is_not_a_weights_file(tmp_path):
    model = build_model(BACKBONE, 2, weights="none", input_size=64)
    path = save_model(model, tmp_path / "whole-model.h5", ["a", "b"])

    message = refused(path)

    assert "is a whole Keras model" in message and "base.save_weights" in message


@pytest.mark.hostile
def test_a_keras_archive_named_h5_is_refused(tmp_path):
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(tmp_path / "model.keras")
    path = tmp_path / "renamed.weights.h5"
    shutil.copy(tmp_path / "model.keras", path)

    assert "is not an HDF5 file, or is damaged" in refused(path)


@pytest.mark.hostile
@pytest.mark.parametrize("content", ["garbage", "empty", "truncated"])
def test_garbage_empty_and_truncated_files_are_refused(lite0_file, tmp_path, content):
    path = tmp_path / f"{content}.weights.h5"
    whole = lite0_file[0].read_bytes()
    path.write_bytes({"garbage": b"\x89HDF but not really" * 50, "empty": b"", "truncated": whole[: len(whole) // 2]}
                     [content])

    assert "is not an HDF5 file, or is damaged" in refused(path)


@pytest.mark.hostile
@pytest.mark.filterwarnings("ignore:Skipping nested container")
@pytest.mark.slow
def test_arrays_of_the_right_shapes_holding_text_are_refused(lite0_file, tmp_path):
    path = tmp_path / "text.weights.h5"
    shutil.copy(lite0_file[0], path)
    with h5py.File(path, "a") as file:
        name = next(name for name, item in _datasets(file) if item.ndim == 4)
        shape = file[name].shape
        del file[name]
        file.create_dataset(name, data=np.full(shape, b"x", dtype="S1"))

    assert "does not fit efficientnet_lite0" in refused(path)


@pytest.mark.hostile
def test_a_weights_file_linking_to_another_file_is_refused(lite0_file, tmp_path):
    path = tmp_path / "linked.weights.h5"
    shutil.copy(lite0_file[0], path)
    with h5py.File(path, "a") as file:
        file["stolen"] = h5py.ExternalLink("/etc/hostname", "/")

    assert "links its object 'stolen' to another file ('/etc/hostname')" in refused(path)


@pytest.mark.hostile
def test_a_weights_file_reading_another_files_bytes_is_refused(lite0_file, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(32, dtype="float32").tobytes())
    path = tmp_path / "external.weights.h5"
    shutil.copy(lite0_file[0], path)
    with h5py.File(path, "a") as file:
        name = next(name for name, item in _datasets(file) if item.shape == (32,))
        del file[name]
        file.create_dataset(name, shape=(32,), dtype="float32", external=[(str(secret), 0, 128)])

    assert f"dataset {name!r} is stored in external files" in refused(path)


@pytest.mark.hostile
def test_a_weights_file_over_the_size_limit_is_refused_before_building(lite0_file, monkeypatch):
    monkeypatch.setenv("TLTOOLS_MAX_MODEL_BYTES", "100000")
    size = lite0_file[0].stat().st_size

    message = refused(lite0_file[0])

    assert f"({size:,} bytes), over the 97.7 KiB (100,000 bytes) limit" in message
    assert "set TLTOOLS_MAX_MODEL_BYTES to a larger number" in message


def _datasets(file: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found = []
    file.visititems(lambda name, item: found.append((name, item)) if isinstance(item, h5py.Dataset) else None)
    return found
