"""Tiny generated images, folders and zip archives for tests."""

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(color=(200, 30, 30), size=(32, 24), fmt="PNG", seed=None, **save_args) -> bytes:
    """Return an encoded image: a solid colour, or seeded noise when ``seed`` is given."""
    if seed is None:
        image = Image.new("RGB", size, color)
    else:
        pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``files`` (relative path → content) below ``root`` and return ``root``."""
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    """Return a zip archive holding ``files`` (archive name → content), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def class_images(classes=("cat", "dog"), per_class=4, size=(32, 24), prefix="") -> dict[str, bytes]:
    """Return ``{prefix}<class>/<n>.png`` entries of distinct noise images for each class."""
    files = {}
    for c, name in enumerate(classes):
        for n in range(per_class):
            files[f"{prefix}{name}/{n}.png"] = image_bytes(size=size, seed=1000 * c + n)
    return files


COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 60, 200)}


def colour_images(colours: dict, per_class: int, seed: int, prefix: str = "") -> dict[str, bytes]:
    """Noisy solid-colour PNGs, ``{prefix}<class>/<n>.png``: easy to learn, all distinct."""
    rng = np.random.default_rng(seed)
    files = {}
    for name, rgb in colours.items():
        for n in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG")
            files[f"{prefix}{name}/{n}.png"] = buffer.getvalue()
    return files


def fast_config(**overrides):
    """A TrainConfig for tests: the default backbone (offline ImageNet weights) at 64 px, few epochs."""
    from tltools.training import TrainConfig

    settings = dict(image_size=64, epochs=2, batch_size=8, val_fraction=0.3, seed=0, early_stopping_patience=0)
    settings.update(overrides)
    return TrainConfig(**settings)
