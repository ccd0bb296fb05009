"""The built-in sample dataset: scikit-learn's digits as PNG class folders, written once."""

import numpy as np
from PIL import Image

from tltools import paths
from tltools.data import load_dataset
from tltools.data.sample import PER_CLASS, SIZE, sample_digits_dataset


def test_writes_ten_digit_folders_of_equal_size_into_the_datasets_folder():
    folder = sample_digits_dataset()
    assert folder == paths.datasets_dir() / "sample-digits"
    classes = sorted(path.name for path in folder.iterdir() if path.is_dir())
    assert classes == [str(digit) for digit in range(10)]
    assert all(len(list((folder / name).glob("*.png"))) == PER_CLASS for name in classes)


def test_images_are_upscaled_dark_digits_on_white():
    with Image.open(sample_digits_dataset() / "0" / "000.png") as image:
        pixels = np.asarray(image)
    assert image.size == (SIZE, SIZE)
    assert pixels[0, 0] == 255 and pixels.min() < 64  # white corner, dark ink
    assert np.array_equal(pixels[::4, ::4].repeat(4, 0).repeat(4, 1), pixels)  # nearest: 4x4 blocks


def test_a_second_call_reuses_the_folder_without_rewriting_it():
    folder = sample_digits_dataset()
    first = folder / "7" / "000.png"
    written = first.stat().st_mtime_ns
    assert sample_digits_dataset() == folder
    assert first.stat().st_mtime_ns == written
    assert not [path for path in folder.parent.iterdir() if path.name.startswith(".sample-digits")]


def test_loads_as_a_ten_class_dataset_with_its_readme_as_documentation():
    dataset = load_dataset(sample_digits_dataset())
    report = dataset.report()
    assert dataset.classes == [str(digit) for digit in range(10)]
    assert report["num_images"] == 10 * PER_CLASS
    assert set(report["classes"].values()) == {PER_CLASS}
    assert report["skipped"] == []
    assert dataset.documentation == ["README.txt"]


def test_the_sample_says_what_it_is_and_what_reaches_a_good_accuracy_on_it():
    from tltools.data.sample import RECOMMENDED_TIME_BUDGET_S, describe_sample, recommended_config

    text = describe_sample()
    assert "8×8" in text and "ImageNet" in text and f"--time-budget {RECOMMENDED_TIME_BUDGET_S:.0f}" in text
    config = recommended_config(seed=3)
    assert config.fine_tune_epochs > 0 and config.unfreeze == "block:6" and config.seed == 3
    assert config.phase2_learning_rate > config.learning_rate / 10  # measured: a tenth of the head's rate is too low
