"""Tiny, learnable image datasets for training tests (colour is the class), and fast settings."""

import numpy as np
import pytest
from PIL import Image

from tests.factories import write_tree
from tltools.data import load_dataset
from tltools.training import TrainConfig

COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 200)}


def colour_images(colours: dict, per_class: int, seed: int, prefix: str = "") -> dict[str, bytes]:
    """Noisy solid-colour PNGs, ``{prefix}<class>/<n>.png``: easy to learn, all distinct."""
    rng = np.random.default_rng(seed)
    files = {}
    for name, rgb in colours.items():
        for n in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            buffer = __import__("io").BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            files[f"{prefix}{name}/{n}.png"] = buffer.getvalue()
    return files


@pytest.fixture(scope="session")
def colours_dir(tmp_path_factory):
    """Three colour classes, 10 images each, in class folders."""
    return write_tree(tmp_path_factory.mktemp("colours"), colour_images(COLOURS, 10, seed=0))


@pytest.fixture(scope="session")
def colours(colours_dir):
    return load_dataset(colours_dir, val_fraction=0.3, seed=0)


def fast_config(**overrides) -> TrainConfig:
    """The default backbone (offline ImageNet weights) at 64 px, with small batches and few epochs."""
    settings = dict(image_size=64, epochs=2, batch_size=8, val_fraction=0.3, seed=0, early_stopping_patience=0)
    settings.update(overrides)
    return TrainConfig(**settings)
