"""Reading one image the same way everywhere: ingest, training, evaluation, prediction.

Every image enters tltools through :func:`open_rgb` (decode with Pillow, first
frame, EXIF orientation applied, any mode turned into 8-bit RGB) and
:func:`to_array` (resize to a square input size, ``uint8`` 0..255). Training
and prediction therefore see identical pixels; normalisation is left to the
model.
"""

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tltools.errors import TLToolsError
from tltools.limits import default_limits

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# Pillow's Hamming filter: antialiased when shrinking (photos are usually far larger than the
# model input, and unfiltered bilinear sampling aliases them), slightly sharper than its bilinear.
# The bundle's standalone predict.py uses the same filter, so exported models see the same pixels.
RESAMPLING = Image.Resampling.HAMMING
# Bump when load_image returns other pixels for the same file (resampling, EXIF, colour handling):
# the decoded-image and feature caches include it in their keys, so old pixels are never reused.
LOADER_VERSION = 1

# Modes with more than 8 bits per channel; they are scaled, not clipped, to 8 bits.
_WIDE_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535}


def is_image_name(name: str) -> bool:
    """Return True when ``name`` has one of the accepted image extensions."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def open_rgb(source, *, max_pixels: int | None = None) -> Image.Image:
    """Decode an image into a fully loaded 8-bit RGB Pillow image.

    Args:
        source: A path, ``bytes``, a binary file object, a PIL image, or a
            ``uint8`` array of shape (H, W), (H, W, 3) or (H, W, 4).
        max_pixels: Largest width * height accepted; defaults to
            ``Limits.max_image_pixels``.

    Returns:
        An RGB image: first frame of animations, EXIF orientation applied,
        transparency composited onto white, 16-bit data scaled to 8 bits.

    Raises:
        TLToolsError: The data is not an image Pillow can decode, is
            truncated or corrupt, or has more pixels than ``max_pixels``.
    """
    if max_pixels is None:
        max_pixels = default_limits().max_image_pixels
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        image = _decode(source, max_pixels)
    _check_pixels(image, max_pixels)
    return _to_rgb(_apply_orientation(image))


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """Resize an RGB image to ``size`` x ``size`` and return it as ``uint8`` (H, W, 3).

    An image already at that size is returned pixel for pixel (no resampling,
    no crop); others are resized whole, aspect ratio not kept (as Keras'
    ``image_dataset_from_directory`` does), with :data:`RESAMPLING`.
    """
    if image.size != (size, size):
        image = image.resize((size, size), RESAMPLING)
    return np.asarray(image, dtype=np.uint8)


def load_image(source, size: int, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``source`` and return it as a ``uint8`` (size, size, 3) array.

    Args and Raises are those of :func:`open_rgb`.
    """
    return to_array(open_rgb(source, max_pixels=max_pixels), size)


def _decode(source, max_pixels: int) -> Image.Image:
    where = f" {source}" if isinstance(source, (str, Path)) else ""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            # Pillow's own warning threshold is not ours: _check_pixels applies max_pixels right after
            # the header is read, before any pixel is decoded. Past twice its threshold Pillow refuses anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
            _check_pixels(image, max_pixels)
            image.seek(0)
            image.load()
    except Image.DecompressionBombError as error:
        raise TLToolsError(f"decompression bomb: image{where} is too large to decode ({error}); "
                           "images that large are never decoded") from None
    except FileNotFoundError:
        raise TLToolsError(f"image file not found:{where}") from None
    except UnidentifiedImageError:
        raise TLToolsError(f"not a picture in a format this app reads (JPEG, PNG, BMP, GIF, WebP, TIFF){where}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise TLToolsError(f"corrupt or truncated image{where} ({error})") from None
    except TLToolsError:
        raise
    except Exception as error:  # hostile files make Pillow raise TypeError, struct.error, ...; its fuzzer catches all
        raise TLToolsError(f"corrupt image{where} ({type(error).__name__}: {error})") from None
    return image


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate by the EXIF orientation; unreadable EXIF leaves the (intact) pixels as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # corrupt EXIF raises SyntaxError, TypeError, struct.error, ... from Pillow's TIFF parser
        return image


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise TLToolsError(
            f"decompression bomb: {width}x{height} = {width * height} pixels is over the limit of "
            f"{max_pixels} (raise TLTOOLS_MAX_IMAGE_PIXELS to accept it)"
        )
    if width == 0 or height == 0:
        raise TLToolsError(f"empty image: {width}x{height} pixels")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise TLToolsError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise TLToolsError(f"image array values must be in 0..255; got {array.min()}..{array.max()}")
        array = array.astype(np.uint8)
    return Image.fromarray(array)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_MODES or image.mode == "F":
        peak = _WIDE_MODES.get(image.mode, 1.0)
        scaled = np.clip(np.asarray(image, dtype=np.float64) / peak * 255.0 + 0.5, 0, 255)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")
