"""A small generated dataset with one of each finding, for end-to-end health tests (64-96 px images)."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circles", "squares", "stripes")


def drawing(shape: str, seed: int, size: int = 96) -> Image.Image:
    """Return a picture of a random number of random ``shape``s on a random background."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(120, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 8))):
        colour = tuple(int(v) for v in rng.integers(0, 200, 3))
        x, y = (int(v) for v in rng.integers(-10, size - 10, 2))
        extent = int(rng.integers(10, 45))
        if shape == "circles":
            draw.ellipse([x, y, x + extent, y + extent], fill=colour)
        elif shape == "squares":
            draw.rectangle([x, y, x + extent, y + extent], fill=colour)
        else:
            slope, width = float(rng.uniform(-1, 1)), int(rng.integers(2, 6))
            draw.line([(0, y), (size, y + slope * size)], fill=colour, width=width)
            draw.line([(0, y + extent), (size, y + extent + slope * size)], fill=colour, width=width)
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def write_health_set(root: Path, per_class: int = 14) -> dict:
    """Write ``root/<shape>/<n>.png`` plus one planted finding of each kind; return what was planted.

    Planted: ``squares/wrong.png`` is a circles picture (a label error, suggested ``circles``);
    ``stripes/copy.jpg`` is ``stripes/0.png`` re-encoded as JPEG at 70 % quality and 0.9x size (a near
    duplicate); ``circles/blank.png`` is a flat grey frame (an outlier).
    """
    for number, shape in enumerate(SHAPES):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            (root / shape / f"{n}.png").write_bytes(encoded(drawing(shape, 1000 * number + n)))
    (root / "squares" / "wrong.png").write_bytes(encoded(drawing("circles", 99)))
    original = Image.open(root / "stripes" / "0.png")
    (root / "stripes" / "copy.jpg").write_bytes(encoded(original.resize((86, 86)), "JPEG", quality=70))
    (root / "circles" / "blank.png").write_bytes(encoded(Image.new("RGB", (96, 96), (128, 128, 128))))
    return {"label_error": ("squares/wrong.png", "circles"), "duplicate": {"stripes/0.png", "stripes/copy.jpg"},
            "outlier": "circles/blank.png"}
