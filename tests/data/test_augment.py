"""Augmentation layers: each switchable on its own, value range 0..255 kept."""

import keras
import numpy as np
import pytest

from tltools.data.augment import AugmentOptions, build_augmenter
from tltools.errors import TLToolsError

SWITCHES = [
    ("flip", "horizontal", keras.layers.RandomFlip),
    ("rotation", 0.2, keras.layers.RandomRotation),
    ("zoom", 0.3, keras.layers.RandomZoom),
    ("contrast", 0.5, keras.layers.RandomContrast),
    ("translation", 0.2, keras.layers.RandomTranslation),
]


def _batch(seed=0) -> np.ndarray:
    """Eight 32x32 images with the full 0..255 range, including solid 0 and 255 areas."""
    images = np.random.default_rng(seed).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    images[:, :8] = 0.0
    images[:, -8:] = 255.0
    return images


def test_all_options_off_builds_no_augmenter():
    assert AugmentOptions().enabled is False
    assert build_augmenter(AugmentOptions()) is None


@pytest.mark.parametrize(("option", "value", "layer_type"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_each_option_switches_on_exactly_its_own_layer(option, value, layer_type):
    options = AugmentOptions(**{option: value})

    augmenter = build_augmenter(options, seed=1)

    assert options.enabled
    assert [type(layer) for layer in augmenter.layers] == [layer_type]


@pytest.mark.parametrize(("option", "value", "layer_type"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_each_augmentation_changes_images_and_keeps_them_in_0_to_255(option, value, layer_type):
    images = _batch()
    augmenter = build_augmenter(AugmentOptions(**{option: value}), seed=3)

    changed = [np.asarray(augmenter(images, training=True)) for _ in range(3)]

    for output in changed:
        assert output.shape == images.shape
        assert output.min() >= 0.0 and output.max() <= 255.0
    assert any(not np.allclose(output, images) for output in changed)


def test_all_augmentations_together_keep_the_range_and_the_dtype():
    images = _batch()
    options = AugmentOptions(flip="horizontal_and_vertical", rotation=0.5, zoom=0.5, contrast=0.9, translation=0.3)

    output = np.asarray(build_augmenter(options, seed=0)(images, training=True))

    assert output.dtype == np.float32
    assert output.min() >= 0.0 and output.max() <= 255.0
    assert output.max() > 200.0  # still 0..255 data, not rescaled to 0..1


def test_augmenter_is_a_no_op_at_inference():
    images = _batch()

    output = build_augmenter(AugmentOptions.light(), seed=0)(images, training=False)

    assert np.allclose(np.asarray(output), images)


def test_light_preset_flips_horizontally_and_is_enabled():
    options = AugmentOptions.light()

    assert options.enabled and options.flip == "horizontal"
    assert keras.layers.RandomFlip in [type(layer) for layer in build_augmenter(options).layers]


@pytest.mark.parametrize(
    "options",
    [AugmentOptions(flip="diagonal"), AugmentOptions(rotation=-0.1), AugmentOptions(zoom=1.5),
     AugmentOptions(contrast=2.0), AugmentOptions(translation=-1.0)],
    ids=["bad-flip", "negative-rotation", "zoom-over-one", "contrast-over-one", "negative-translation"],
)
def test_invalid_options_are_a_tltools_error_naming_the_value(options):
    with pytest.raises(TLToolsError, match=r"flip='diagonal'|=-0.1|=1.5|=2.0|=-1.0"):
        build_augmenter(options)


def _flip_and_rotation_draws(seed, count=400):
    """What the flip and the rotation layer of one augmenter draw for a batch of ``count`` images."""
    flip, rotate = build_augmenter(AugmentOptions(flip="horizontal", rotation=0.2), seed=seed).layers
    images = np.zeros((count, 8, 8, 3), "float32")
    flipped = np.asarray(flip.get_random_transformation(images, training=True)["flips"]).reshape(-1)
    angles = np.asarray(rotate.get_random_transformation(images, training=True)["angle"]).reshape(-1)
    return flipped.astype("float64"), angles


def test_the_random_layers_draw_independently_of_each_other():
    flipped, angles = _flip_and_rotation_draws(seed=7)

    assert 0.3 < flipped.mean() < 0.7 and 0.3 < (angles > 0).mean() < 0.7
    # With one seed shared by all layers this is -1.0: every flipped image rotated the same way.
    assert abs(np.corrcoef(flipped, angles > 0)[0, 1]) < 0.2


def test_the_same_seed_gives_the_same_augmentations_and_another_seed_others():
    images = _batch()
    options = AugmentOptions(flip="horizontal_and_vertical", rotation=0.3, zoom=0.3, contrast=0.5, translation=0.2)

    def augmented(seed):
        augmenter = build_augmenter(options, seed=seed)
        return [np.asarray(augmenter(images, training=True)) for _ in range(2)]

    first = augmented(5)
    np.testing.assert_array_equal(np.stack(first), np.stack(augmented(5)))
    assert not np.allclose(first[0], first[1]), "each batch gets new draws"
    assert not np.allclose(np.stack(first), np.stack(augmented(6)))
    np.testing.assert_array_equal(_flip_and_rotation_draws(seed=7)[1], _flip_and_rotation_draws(seed=7)[1])
