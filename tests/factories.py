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
