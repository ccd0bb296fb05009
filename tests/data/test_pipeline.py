"""The tf.data pipeline: float32 batches in 0..255, int32 labels, seeded shuffling, train-only augmentation."""

import numpy as np
import pytest
from PIL import Image

from tests.factories import class_images, image_bytes, write_tree
from tltools.data import load_dataset, load_image
from tltools.data.augment import AugmentOptions
from tltools.data.pipeline import decode_images, make_tf_dataset, split_pipeline

N = 20


@pytest.fixture
def images() -> np.ndarray:
    """N tiny uint8 images covering 0..255; image i is filled with value i except for a 0 and a 255 pixel."""
    array = np.repeat(np.arange(N, dtype=np.uint8)[:, None, None, None], 16 * 16 * 3, axis=1).reshape(N, 16, 16, 3)
    array[:, 0, 0] = 0
    array[:, 15, 15] = 255
    return array


def _batches(pipeline) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in pipeline]


def _order(pipeline) -> list[int]:
    return [int(label) for _, labels in _batches(pipeline) for label in labels]


def test_batches_are_float32_in_0_to_255_with_int32_labels(images):
    batches = _batches(make_tf_dataset(images, np.arange(N), batch_size=8))

    assert [x.shape for x, _ in batches] == [(8, 16, 16, 3), (8, 16, 16, 3), (4, 16, 16, 3)]
    assert all(x.dtype == np.float32 and y.dtype == np.int32 for x, y in batches)
    everything = np.concatenate([x for x, _ in batches])
    assert everything.max() == 255.0 and everything.min() == 0.0  # not normalised: the model does that
    assert np.array_equal(everything, images.astype(np.float32))
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(N))


def test_labels_stay_with_their_images_when_shuffled(images):
    for x, y in _batches(make_tf_dataset(images, np.arange(N), batch_size=6, shuffle=True, seed=0)):
        assert np.array_equal(x[:, 5, 5, 0], y.astype(np.float32))


def test_shuffle_is_reproducible_with_a_seed(images):
    def make(seed):
        return make_tf_dataset(images, np.arange(N), batch_size=4, shuffle=True, seed=seed)

    first = _order(make(11))

    assert first == _order(make(11))
    assert first != _order(make(12))
    assert first != list(range(N)) and sorted(first) == list(range(N))


def test_the_shuffle_order_depends_on_its_seed_alone_not_on_process_wide_seeds(images):
    import keras

    orders = []
    for global_seed in (1, 2):  # another thread (an old run, a page) reseeding everything
        keras.utils.set_random_seed(global_seed)
        orders.append(_order(make_tf_dataset(images, np.arange(N), batch_size=4, shuffle=True, seed=11)))

    assert orders[0] == orders[1]


def test_shuffle_gives_each_epoch_a_new_order(images):
    pipeline = make_tf_dataset(images, np.arange(N), batch_size=4, shuffle=True, seed=3)

    assert _order(pipeline) != _order(pipeline)


@pytest.mark.parametrize("augment", [None, AugmentOptions()], ids=["none", "all-off"])
def test_augmentation_switched_off_leaves_images_untouched(images, augment):
    pipeline = make_tf_dataset(images, np.arange(N), batch_size=N, augment=augment)

    assert np.array_equal(_batches(pipeline)[0][0], images.astype(np.float32))


def test_augmentation_in_the_pipeline_changes_images_but_keeps_0_to_255(images):
    noisy = np.random.default_rng(0).integers(0, 256, images.shape).astype(np.uint8)
    options = AugmentOptions(flip="horizontal_and_vertical", rotation=0.3, zoom=0.3, contrast=0.5, translation=0.2)

    (x, y), = _batches(make_tf_dataset(noisy, np.arange(N), batch_size=N, seed=1, augment=options))

    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 255.0
    assert x.max() > 200.0
    assert not np.allclose(x, noisy.astype(np.float32))
    assert y.tolist() == list(range(N))


def test_image_and_label_counts_must_match(images):
    with pytest.raises(ValueError, match="20 images but 3 labels"):
        make_tf_dataset(images, np.arange(3), batch_size=4)


def test_decode_images_uses_the_prediction_loader_and_keeps_target_size_images_unchanged(tmp_path):
    exact = tmp_path / "exact.png"
    exact.write_bytes(image_bytes(size=(24, 24), seed=1))
    bigger = tmp_path / "bigger.jpg"
    bigger.write_bytes(image_bytes(size=(50, 30), fmt="JPEG", seed=2))

    decoded = decode_images([exact, bigger], 24)

    assert decoded.shape == (2, 24, 24, 3) and decoded.dtype == np.uint8
    assert np.array_equal(decoded[0], np.asarray(Image.open(exact).convert("RGB")))
    assert np.array_equal(decoded[1], load_image(bigger, 24))


def test_decode_images_reports_progress_for_every_image(tmp_path):
    write_tree(tmp_path, {f"{n}.png": image_bytes(seed=n) for n in range(5)})
    calls = []

    decode_images(sorted(tmp_path.iterdir()), 8, on_progress=lambda done, total: calls.append((done, total)))

    assert calls[-1] == (5, 5) and len(calls) == 5


def test_split_pipeline_yields_each_image_of_the_split_once_with_its_label(tmp_path):
    write_tree(tmp_path, class_images(("blue", "red"), per_class=6, size=(20, 20)))
    dataset = load_dataset(tmp_path, val_fraction=0.5, seed=0)

    batches = _batches(split_pipeline(dataset, "val", image_size=20, batch_size=4))

    x = np.concatenate([batch for batch, _ in batches])
    y = np.concatenate([labels for _, labels in batches])
    expected = np.stack([load_image(path, 20) for path in dataset.paths("val")]).astype(np.float32)
    assert np.array_equal(x, expected)
    assert y.tolist() == dataset.labels("val").tolist()
    assert len(y) == 6
