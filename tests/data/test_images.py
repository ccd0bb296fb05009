"""The one image loader: formats, modes to RGB, EXIF orientation, corrupt files and bombs."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.factories import image_bytes
from tltools.data.images import load_image, open_rgb, to_array
from tltools.errors import TLToolsError


def _encode(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def _pixels(data) -> np.ndarray:
    return np.asarray(open_rgb(data))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"])
def test_every_accepted_format_decodes_to_rgb_at_its_size(fmt):
    image = open_rgb(image_bytes(color=(200, 30, 30), size=(20, 12), fmt=fmt))

    assert image.mode == "RGB"
    assert image.size == (20, 12)
    assert np.allclose(np.asarray(image)[6, 10], (200, 30, 30), atol=12)  # lossy formats are close, not exact


@pytest.mark.hostile
def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)

    assert tuple(_pixels(buffer.getvalue())[4, 4]) == (255, 0, 0)


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (4, 4), 77), (77, 77, 77)),
        (Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 0)), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("RGB", (4, 4), (1, 2, 3)).convert("P", palette=Image.Palette.ADAPTIVE), (1, 2, 3)),
    ],
    ids=["L", "LA-transparent", "RGBA-transparent", "RGBA-opaque", "CMYK", "1-bit", "P"],
)
def test_every_mode_becomes_rgb_with_transparency_on_white(image, expected):
    decoded = open_rgb(_encode(image, "TIFF" if image.mode == "CMYK" else "PNG"))

    assert decoded.mode == "RGB"
    assert tuple(np.asarray(decoded)[2, 2]) == expected


@pytest.mark.hostile
def test_palette_image_with_a_transparent_colour_is_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.putpixel((0, 0), 1)

    pixels = _pixels(_encode(image, "PNG", transparency=0))

    assert tuple(pixels[0, 0]) == (200, 10, 10)
    assert tuple(pixels[3, 3]) == (255, 255, 255)


@pytest.mark.hostile
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_is_scaled_to_8_bits_not_clipped(fmt):
    image = Image.fromarray(np.array([[0, 1000, 32768, 65535]], dtype=np.uint16))

    pixels = _pixels(_encode(image, fmt))

    assert list(pixels[0, :, 0]) == [0, 4, 128, 255]
    assert (pixels[..., 0] == pixels[..., 2]).all()


@pytest.mark.hostile
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt):
    image = Image.new("RGB", (32, 16), (255, 0, 0))
    image.paste((0, 0, 255), (16, 0, 32, 16))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise

    decoded = open_rgb(_encode(image, fmt, exif=exif))

    pixels = np.asarray(decoded).astype(int)
    assert decoded.size == (16, 32)
    assert pixels[2, 8, 0] > 200 and pixels[2, 8, 2] < 60  # top is red
    assert pixels[29, 8, 2] > 200 and pixels[29, 8, 0] < 60  # bottom is blue


@pytest.mark.hostile
def test_corrupt_exif_leaves_an_otherwise_intact_image_usable():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = bytearray(_encode(Image.new("RGB", (8, 6), (10, 200, 30)), "WEBP", exif=exif))
    chunk = data.index(b"EXIF")
    header = min(i for i in (data.find(b"MM\x00*", chunk), data.find(b"II*\x00", chunk)) if i >= 0)
    data[header] = 0x17  # the EXIF block no longer starts with a TIFF header

    decoded = open_rgb(bytes(data))

    assert decoded.size == (8, 6)
    assert np.allclose(np.asarray(decoded)[3, 4], (10, 200, 30), atol=12)


def _truncated(fmt: str) -> bytes:
    data = image_bytes(size=(40, 30), fmt=fmt, seed=3)
    return data[: len(data) // 2]


def _tiff_with_text_strip_offsets() -> bytes:
    data = image_bytes(fmt="TIFF", seed=1, size=(16, 12))
    return data.replace(b"\x11\x01\x04\x00", b"\x11\x01\x02\x00", 1)  # StripOffsets typed as ASCII


@pytest.mark.hostile
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, I am a text file",
        bytes(range(256)) * 4,
        _truncated("PNG"),
        _truncated("JPEG"),
        _truncated("GIF"),
        _truncated("WEBP"),
        image_bytes(fmt="PNG")[:40],
        _tiff_with_text_strip_offsets(),
    ],
    ids=["empty", "text", "noise", "png-half", "jpeg-half", "gif-half", "webp-half", "png-header-only",
         "tiff-bad-tag-type"],
)
def test_corrupt_or_truncated_image_is_a_tltools_error(data):
    with pytest.raises(TLToolsError) as raised:
        open_rgb(data)

    assert "\n" not in str(raised.value)


@pytest.mark.hostile
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's complaints about the damaged TIFF tags
def test_mutated_images_only_ever_raise_tltools_error():
    rng = np.random.default_rng(7)
    bases = [image_bytes(fmt=fmt, seed=1, size=(12, 10)) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")]
    decoded, refused = 0, 0
    for _ in range(600):
        data = bytearray(bases[rng.integers(len(bases))])
        for position in rng.integers(0, len(data), rng.integers(1, 4)):
            data[position] = rng.integers(256)
        try:
            image = open_rgb(bytes(data))
        except TLToolsError as error:  # anything else escapes and fails the test
            assert str(error) and "\n" not in str(error), repr(error)
            refused += 1
        else:  # a byte that did not matter (or only changed pixels): still a whole 8-bit RGB image
            pixels = np.asarray(image)
            assert image.mode == "RGB" and pixels.dtype == np.uint8 and pixels.shape == (*image.size[::-1], 3)
            assert min(image.size) > 0
            decoded += 1
    assert decoded > 50 and refused > 50, (decoded, refused)  # the mutations reach both outcomes


def test_image_file_path_and_file_object_are_accepted(tmp_path):
    path = tmp_path / "été photo.png"
    path.write_bytes(image_bytes(color=(9, 8, 7)))

    assert tuple(_pixels(path)[0, 0]) == (9, 8, 7)
    assert tuple(_pixels(str(path))[0, 0]) == (9, 8, 7)
    with open(path, "rb") as handle:
        assert tuple(_pixels(handle)[0, 0]) == (9, 8, 7)


def test_missing_image_file_is_a_tltools_error(tmp_path):
    with pytest.raises(TLToolsError, match="not found"):
        open_rgb(tmp_path / "nope.png")


@pytest.mark.hostile
@pytest.mark.parametrize("size", [(101, 100), (1000, 11)])
def test_image_over_the_pixel_limit_is_refused_as_a_decompression_bomb(size):
    with pytest.raises(TLToolsError, match="decompression bomb"):
        open_rgb(image_bytes(size=size), max_pixels=10_000)


def test_image_at_the_pixel_limit_is_accepted():
    assert open_rgb(image_bytes(size=(100, 100)), max_pixels=10_000).size == (100, 100)


def test_load_image_keeps_an_image_at_the_target_size_pixel_for_pixel():
    data = image_bytes(size=(24, 24), seed=5)

    assert np.array_equal(load_image(data, 24), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_load_image_resizes_to_a_square_uint8_array():
    array = load_image(image_bytes(size=(40, 20), color=(0, 255, 0)), 16)

    assert array.shape == (16, 16, 3) and array.dtype == np.uint8
    assert (array == (0, 255, 0)).all()


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((4, 4), 50, np.uint8), (50, 50, 50)),
        (np.full((4, 4, 1), 60, np.uint8), (60, 60, 60)),
        (np.full((4, 4, 3), (1, 2, 3), np.uint8), (1, 2, 3)),
        (np.full((4, 4, 4), (1, 2, 3, 255), np.uint8), (1, 2, 3)),
        (np.full((4, 4, 3), 7.0), (7, 7, 7)),
    ],
    ids=["HW", "HW1", "HW3", "HW4", "float"],
)
def test_arrays_are_accepted_like_files(array, expected):
    assert tuple(to_array(open_rgb(array), 4)[1, 1]) == expected


@pytest.mark.hostile
@pytest.mark.parametrize(
    "array", [np.zeros((4, 4, 2), np.uint8), np.zeros((2, 4, 4, 3), np.uint8), np.full((4, 4, 3), 300.0)],
    ids=["two-channels", "batch", "out-of-range"],
)
def test_arrays_that_are_not_images_are_refused(array):
    with pytest.raises(TLToolsError):
        open_rgb(array)
