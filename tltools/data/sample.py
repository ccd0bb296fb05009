"""A small built-in dataset to try the app with: scikit-learn's handwritten digits as PNG class folders.

scikit-learn ships the UCI "Optical Recognition of Handwritten Digits" test set
(1797 greyscale 8x8 images of the digits 0-9) inside its wheel, so no download
is needed. :func:`sample_digits_dataset` writes the first
:data:`PER_CLASS` images of each digit, upscaled to :data:`SIZE` pixels, as
``0/`` ... ``9/`` class folders that :func:`tltools.data.load_dataset` reads.
400 images keep a first training run on a CPU to a minute or two.
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tltools import paths

FOLDER_NAME = "sample-digits"
PER_CLASS = 40
SIZE = 32
# Auto mode's time budget for the sample: enough for it to try fine-tuning (at 180 s, measured, it had no room).
RECOMMENDED_TIME_BUDGET_S = 300.0
# The manual path: a converged head, then a short fine-tune of the top two blocks at a rate well above the
# default tenth of the head's (measured in the README's Accuracy section: 1e-4 reached 0.86-0.89 validation
# accuracy, 3.3e-4 0.96).
RECOMMENDED_FINE_TUNE_EPOCHS = 15
RECOMMENDED_FINE_TUNE_LEARNING_RATE = 3e-4
_README = """Handwritten digits 0-9, {per_class} per class, {size}x{size} greyscale PNG (upscaled from 8x8).

Source: scikit-learn's sklearn.datasets.load_digits, a copy of the test set of the UCI ML
"Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998),
https://archive.ics.uci.edu/dataset/80. License: CC BY 4.0.
"""


def sample_digits_dataset() -> Path:
    """Write the sample digits dataset once and return its folder.

    The folder is ``tltools.paths.datasets_dir() / "sample-digits"`` with one
    sub-folder per digit holding :data:`PER_CLASS` dark-on-white PNGs of
    :data:`SIZE` x :data:`SIZE` pixels (nearest-neighbour upscaling keeps the
    original pixels visible), plus a ``README.txt`` naming the source. It is
    written into a temporary sibling folder and renamed into place, so a
    crash or a concurrent call never leaves a half-written dataset; an
    existing folder is reused as it is.

    Returns:
        The dataset folder, ready for :func:`tltools.data.load_dataset`.
    """
    target = paths.datasets_dir() / FOLDER_NAME
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=target.parent))
    try:
        _write_digits(staging)
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not a lost race with another writer: a real failure
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_digits(folder: Path) -> None:
    """Write the first PER_CLASS images of each digit as ``<digit>/<n>.png`` into ``folder``."""
    from sklearn.datasets import load_digits  # imported here: only the sample needs scikit-learn's data

    digits = load_digits()
    for digit in range(10):
        (folder / str(digit)).mkdir()
        images = digits.images[digits.target == digit][:PER_CLASS]
        for number, image in enumerate(images):
            pixels = (255 - np.round(image * 255 / 16)).astype(np.uint8)  # 0..16 ink -> dark ink on white
            Image.fromarray(pixels, "L").resize((SIZE, SIZE), Image.Resampling.NEAREST).save(
                folder / str(digit) / f"{number:03d}.png"
            )
    (folder / "README.txt").write_text(_README.format(per_class=PER_CLASS, size=SIZE), encoding="utf-8")


def describe_sample() -> str:
    """Return, in plain words, what the sample is, why a frozen ImageNet base alone does poorly on it, and
    what reaches a good accuracy (the Home page shows it; the README's Accuracy section has the figures)."""
    return (f"Handwritten digits 0-9, {PER_CLASS} of each: tiny 8×8-pixel scans (upscaled to {SIZE} px), far "
            f"from the photos the backbones learned from on ImageNet. A head on the frozen base alone stays "
            f"well short of what the data allows (about 0.7 validation accuracy); fine-tuning the top two blocks "
            f"of the base for {RECOMMENDED_FINE_TUNE_EPOCHS} epochs at a learning rate of "
            f"{RECOMMENDED_FINE_TUNE_LEARNING_RATE:g} lifts it to about 0.96 in about a minute (set fine-tuning "
            f"epochs to {RECOMMENDED_FINE_TUNE_EPOCHS} and the fine-tuning rate to "
            f"{RECOMMENDED_FINE_TUNE_LEARNING_RATE:g}). 'Find the best model' decides that on its own with a "
            f"budget of {RECOMMENDED_TIME_BUDGET_S / 60:.0f} minutes or more (python -m tltools train DATA --auto "
            f"--time-budget {RECOMMENDED_TIME_BUDGET_S:.0f}).")


def recommended_config(**overrides):
    """Return the manual settings that suit the sample: the defaults (a head trained until validation stops
    improving) plus :data:`RECOMMENDED_FINE_TUNE_EPOCHS` epochs of fine-tuning the top two blocks at
    :data:`RECOMMENDED_FINE_TUNE_LEARNING_RATE`.

    Args:
        overrides: Other :class:`tltools.training.TrainConfig` fields to set.

    Returns:
        The :class:`tltools.training.TrainConfig`.

    Raises:
        TLToolsError: An override is out of range.
    """
    from tltools.training import TrainConfig

    return TrainConfig(**{"fine_tune_epochs": RECOMMENDED_FINE_TUNE_EPOCHS,
                          "fine_tune_learning_rate": RECOMMENDED_FINE_TUNE_LEARNING_RATE, **overrides})
