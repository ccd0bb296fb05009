"""Random photometric corruptions of source images, for self-training's augmentation consistency.

A shift of colour, sharpness or compression (a new camera, stain, lens or
pipeline) changes the frozen base's features in ways the head never saw.
Showing the head the run's own *labelled* source images under random
corruptions of that family teaches it to ignore them, labels known exactly
(unlike pseudo-labels). :func:`corrupt_images` draws, independently per image:

- a colour cast: each channel's gain uniform in ``GAIN`` and one brightness offset in ``OFFSET``;
- a Gaussian blur of radius uniform in ``BLUR`` (none below ``MIN_BLUR``);
- JPEG compression at a quality uniform in ``JPEG_QUALITY``.

The ranges are generic (ImageNet-C-like severities), fixed before any
measurement and not fitted to a target domain. They cover photometric,
blur and compression shifts only: a shift of geometry, background or
subject matter gains nothing from them.
"""

import io

import numpy as np
from PIL import Image, ImageFilter

GAIN = (0.6, 1.4)
OFFSET = (-25.0, 25.0)
BLUR = (0.0, 3.0)
MIN_BLUR = 0.3
JPEG_QUALITY = (15, 95)


def corrupt_image(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return one ``uint8`` (H, W, 3) image under a random colour cast, blur and JPEG compression.

    Args:
        pixels: ``uint8`` or float RGB pixels 0..255, (H, W, 3).
        rng: Where the corruption's strengths are drawn from.

    Returns:
        The corrupted image, ``uint8`` (H, W, 3).
    """
    gains = rng.uniform(*GAIN, size=3).astype(np.float32)
    shifted = np.clip(np.asarray(pixels, np.float32) * gains + rng.uniform(*OFFSET), 0, 255).astype(np.uint8)
    image = Image.fromarray(shifted)
    radius = rng.uniform(*BLUR)
    if radius >= MIN_BLUR:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def corrupt_images(images, rng: np.random.Generator) -> np.ndarray:
    """Return ``images`` (N, H, W, 3), each under its own random corruption drawn from ``rng``.

    Args:
        images: ``uint8`` or float pixels 0..255 (an array or anything indexable by row).
        rng: Where the corruptions' strengths are drawn from (the same seed gives the same result).

    Returns:
        ``uint8`` (N, H, W, 3).
    """
    return np.stack([corrupt_image(images[index], rng) for index in range(len(images))])
