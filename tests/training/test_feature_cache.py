"""The feature cache: keys that change with everything the features depend on, storage, and disk arrays."""

import numpy as np
import pytest

from tests.factories import COLOURS, colour_images, write_tree
from tltools.data import load_dataset, pipeline
from tltools.data.array_store import NpyRows, npy_writer
from tltools.model import build_model
from tltools.model.freezing import apply_unfreeze
from tltools.training import feature_cache
from tltools.training.split_model import split_at_pooling, split_for_fine_tuning


@pytest.fixture
def features_dir(tmp_path, monkeypatch):
    """A feature cache of this test's own."""
    folder = tmp_path / "features"
    monkeypatch.setattr(feature_cache, "features_dir", lambda: folder)
    return folder


def key_of(dataset, backbone="efficientnet_lite0", *, size=64, pooling="avg", weights="imagenet", seed=0,
           unfreeze=None):
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(backbone, dataset.classes, weights=weights, input_size=size, pooling=pooling)
    if unfreeze is None:
        split = split_at_pooling(model)
    else:
        apply_unfreeze(model, unfreeze)
        split = split_for_fine_tuning(model)
    return feature_cache.feature_key(dataset, split, backbone=backbone, weights=weights, image_size=size)


@pytest.fixture(scope="module")
def reference_key(colours):
    return key_of(colours)


@pytest.mark.slow
def test_the_same_data_and_model_give_the_same_key(colours, reference_key):
    again = key_of(colours)
    assert again.digest == reference_key.digest and again.stem == reference_key.stem
    assert reference_key.stem.startswith("efficientnet_lite0-64px-pooling-")


@pytest.mark.slow
def test_the_key_ignores_the_split(colours, reference_key):
    resplit = colours.with_splits(val_fraction=0.5, test_fraction=0.0, seed=7)
    assert key_of(resplit).digest == reference_key.digest


@pytest.mark.parametrize("change", [
    pytest.param(dict(size=96), id="input size"),
    pytest.param(dict(pooling="max"), id="pooling"),
    pytest.param(dict(backbone="mobilenet_v2", weights="none"), id="backbone"),
    pytest.param(dict(weights="none"), id="weights"),
    pytest.param(dict(unfreeze="20"), id="cut point"),
])
@pytest.mark.slow
def test_the_key_changes_with_what_the_features_depend_on(colours, reference_key, change):
    assert key_of(colours, **change).digest != reference_key.digest


@pytest.mark.slow
def test_random_weights_key_by_seed(colours):
    assert key_of(colours, weights="none", seed=1).digest == key_of(colours, weights="none", seed=1).digest
    assert key_of(colours, weights="none", seed=1).digest != key_of(colours, weights="none", seed=2).digest


def test_the_key_changes_when_one_image_changes(tmp_path, reference_key):
    files = colour_images(COLOURS, 10, seed=0)
    files["red/3.png"] = colour_images({"red": COLOURS["red"]}, 1, seed=99)["red/0.png"]
    changed = load_dataset(write_tree(tmp_path / "changed", files), val_fraction=0.3, seed=0)
    assert key_of(changed).digest != reference_key.digest


@pytest.mark.slow
def test_extracted_features_are_stored_and_read_back(colours, features_dir):
    model = build_model("efficientnet_lite0", colours.classes, input_size=64)
    split = split_at_pooling(model)
    key = feature_cache.feature_key(colours, split, backbone="efficientnet_lite0", weights="imagenet", image_size=64)
    assert feature_cache.load_features(key) is None
    table = feature_cache.image_table(colours)
    images = pipeline.decode_images([colours.root / p for p in table["relpath"]], 64)
    reversed_rows = np.arange(len(table))[::-1]  # sources may come in any order; rows say where each goes
    feature_cache.extract_features(split.extractor, [key], [(images[::-1], reversed_rows)], batch_size=8)
    features = feature_cache.load_features(key)
    expected = split.extractor.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(features, expected, atol=1e-5)
    np.testing.assert_array_equal(feature_cache.load_features(key), features)
    assert np.array_equal(np.load(key.npy_path, mmap_mode="r"), features)  # a standard .npy file
    on_disk = feature_cache.load_features(key, memory_budget=0)
    assert isinstance(on_disk, NpyRows) and np.array_equal(on_disk[[3, 1]], features[[3, 1]])


def test_a_feature_file_without_its_description_is_not_a_hit(colours, features_dir):
    model = build_model("efficientnet_lite0", colours.classes, input_size=64)
    split = split_at_pooling(model)
    key = feature_cache.feature_key(colours, split, backbone="efficientnet_lite0", weights="imagenet", image_size=64)
    features_dir.mkdir(parents=True)
    np.save(key.npy_path, np.zeros((len(colours.items), *split.feature_shape), np.float32))
    assert feature_cache.load_features(key) is None


def test_npy_rows_reads_rows_by_index_slice_and_list(tmp_path):
    array = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)
    path = tmp_path / "a.npy"
    with npy_writer(path, array.shape, np.float32) as out:
        out.write(3, array[3:])
        out.write_rows([2, 0, 1], array[[2, 0, 1]])
    rows = NpyRows(path)
    assert rows.shape == (5, 3, 2) and len(rows) == 5 and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[1], array[1])
    np.testing.assert_array_equal(rows[-1], array[-1])
    np.testing.assert_array_equal(rows[1:4], array[1:4])
    np.testing.assert_array_equal(rows[np.array([4, 0, 4])], array[[4, 0, 4]])
    np.testing.assert_array_equal(np.asarray(rows), array)
    with pytest.raises(IndexError):
        rows[5]


def test_an_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "a.npy"
    with pytest.raises(RuntimeError), npy_writer(path, (4, 2), np.uint8) as out:
        out.write(0, np.ones((2, 2), np.uint8))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_decoded_images_past_the_memory_budget_go_to_a_reused_disk_cache(colours, monkeypatch):
    paths = colours.paths("train")
    in_memory = pipeline.decode_images(paths, 32)
    assert isinstance(in_memory, np.ndarray)
    on_disk = pipeline.decode_images(paths, 32, memory_budget=1000, cache_key="test-colours")
    assert isinstance(on_disk, NpyRows) and on_disk.path.parent.name == "decoded"
    np.testing.assert_array_equal(np.asarray(on_disk), in_memory)

    def fail(*args):
        raise AssertionError("a cached image was decoded again")

    monkeypatch.setattr(pipeline, "load_image", fail)
    again = pipeline.decode_images(paths, 32, memory_budget=1000, cache_key="test-colours")
    np.testing.assert_array_equal(np.asarray(again), in_memory)


def test_the_decode_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TLTOOLS_DECODE_MEMORY_BYTES", "1234")
    assert pipeline.decode_memory_budget() == 1234
    monkeypatch.setenv("TLTOOLS_DECODE_MEMORY_BYTES", "lots")
    with pytest.raises(Exception, match="TLTOOLS_DECODE_MEMORY_BYTES"):
        pipeline.decode_memory_budget()


def test_short_writes_are_completed_and_a_write_of_nothing_is_a_full_disk(tmp_path, monkeypatch):
    import errno
    import os

    array = np.arange(4 * 1000, dtype=np.float32).reshape(4, 1000)
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real_pwrite(fd, bytes(data)[:1000], offset))
    with npy_writer(tmp_path / "short.npy", array.shape, np.float32) as out:
        out.write(0, array)
    np.testing.assert_array_equal(np.load(tmp_path / "short.npy"), array)

    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(OSError) as error, npy_writer(tmp_path / "full.npy", array.shape, np.float32) as out:
        out.write(0, array)
    assert error.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == [tmp_path / "short.npy"]


@pytest.mark.hostile
def test_a_damaged_decoded_cache_file_is_decoded_again(colours, tmp_path, monkeypatch):
    monkeypatch.setenv("TLTOOLS_CACHE", str(tmp_path / "cache"))
    paths = colours.paths("train")
    first = pipeline.decode_images(paths, 32, memory_budget=0, cache_key="damaged")
    first.path.write_bytes(b"not an npy file")
    again = pipeline.decode_images(paths, 32, memory_budget=0, cache_key="damaged")
    np.testing.assert_array_equal(np.asarray(again), pipeline.decode_images(paths, 32))
