"""Hostile uploads: one row each, every one ends in a one-line TLToolsError or a load that reports the bad file.

Each row builds one upload (zip bytes, handed over as a named file object like the browser's)
and loads it with :func:`tltools.data.load_dataset` the way the Dataset page does: the app's
split settings, limits from the environment, TLTOOLS_HOME pointing at a fresh sandbox. Every
row then checks the guarantees that hold whatever the input:

* the outcome is the row's: a TLToolsError of one line matching its pattern, or a dataset whose
  ``skipped`` names the bad files with a reason (and whose warnings say what the row expects);
* nothing was written outside ``TLTOOLS_HOME/datasets`` (the sandbox around it, the current
  folder and a "sentinel" folder that '../' and absolute entries aim at stay as they were);
* no staging folder or temporary file is left, and a refused upload leaves nothing at all;
* a load accounts for every entry of the archive: an image, a skipped file, or documentation.

The rows cover the "bad input" list of issue 7; unit tests of each layer stay in their own files.
"""

import dataclasses
import io
import re
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import class_images, image_bytes
from tests.hostile import extraction_folder, leftovers, tree, unaccounted, written_outside
from tltools import paths
from tltools.data import Dataset, load_dataset
from tltools.errors import TLToolsError
from tltools.limits import Limits

pytestmark = pytest.mark.hostile

_LEASE = re.compile(r".+\.lease-\d+")  # tltools.housekeeping's "in use" marker beside a loaded dataset
APP_SETTINGS = {"val_fraction": 0.2, "test_fraction": 0.0, "seed": 42}  # TrainConfig's defaults, as the app passes them


class UploadedFile(io.BytesIO):
    """Stands in for Streamlit's UploadedFile: a BytesIO with the browser's file name."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


@dataclasses.dataclass(frozen=True)
class Row:
    """One hostile upload and what must come of it.

    Attributes:
        build: Returns the upload's bytes; takes the sandbox folder (for absolute paths aimed at it).
        error: Regex the one-line TLToolsError must match; None when the upload must load.
        skipped: Archive path -> regex of the reason the dataset must report it skipped with
            (or a function of the sandbox giving that, for absolute paths into it).
        items: Archive paths that must load as images.
        warning: Regex one of the dataset's warnings must match.
        classes: The exact class list, when the row is about classes.
        env: Environment variables set for the load (limits, as a server operator would).
        settings: Split settings passed instead of the app's.
        name: The upload's file name.
        check: Extra checks on the loaded dataset.
    """

    build: Callable[[Path], bytes]
    error: str | None = None
    skipped: dict[str, str] | Callable[[Path], dict[str, str]] = dataclasses.field(default_factory=dict)
    items: tuple[str, ...] = ()
    warning: str | None = None
    classes: tuple[str, ...] | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    name: str = "upload.zip"
    check: Callable[[Dataset], None] | None = None


# ---------------------------------------------------------------- building archives

def _good() -> dict[str, bytes]:
    """Two healthy classes, three distinct tiny images each."""
    return class_images(("cat", "dog"), per_class=3, size=(16, 12))


def _zip(entries, method=zipfile.ZIP_DEFLATED) -> bytes:
    """Zip ``entries`` (a dict, or (name or ZipInfo, bytes) pairs; duplicates allowed)."""
    pairs = entries.items() if isinstance(entries, dict) else entries
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", method) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of some rows
        for name, content in pairs:
            archive.writestr(name, content)
    return buffer.getvalue()


def _with(extra) -> Callable[[Path], bytes]:
    """A builder: the good classes plus ``extra`` entries (a dict, or a function of the sandbox giving one)."""
    return lambda sandbox: _zip({**_good(), **(extra(sandbox) if callable(extra) else extra)})


def _link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _patch_headers(data: bytes, local_offset: int, central_offset: int, value: int, fmt: str = "<H") -> bytes:
    """Overwrite one field in every local and central header (flags, compression method, sizes)."""
    raw = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        if offset is None:
            continue
        start = 0
        while (found := raw.find(signature, start)) >= 0:
            raw[found + offset : found + offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
            start = found + 4
    return bytes(raw)


def _overlapping_entries(_sandbox) -> bytes:
    """Fifield's "better zip bomb": extra central-directory records all pointing at one local file."""
    data = _zip({**_good(), "cat/kernel.png": image_bytes(size=(16, 12), seed=99)})
    start, end = data.index(b"PK\x01\x02"), data.rindex(b"PK\x05\x06")
    record = data[data.rindex(b"PK\x01\x02", start, end) : end]
    name_length = struct.unpack("<H", record[28:30])[0]
    copies = b"".join(
        record[:28] + struct.pack("<H", len(name)) + record[30:46] + name + record[46 + name_length :]
        for name in (f"cat/copy{n}.png".encode() for n in range(3))
    )
    directory = data[start:end] + copies
    end_record = bytearray(data[end:])
    count = struct.unpack("<H", end_record[10:12])[0] + 3
    end_record[8:16] = struct.pack("<HHI", count, count, len(directory))
    return data[:start] + directory + bytes(end_record)


def _lying_size(_sandbox) -> bytes:
    """An entry whose headers declare 10 bytes but which inflates to 300 000."""
    data = _zip({**_good(), "cat/filler.bin": b"\0" * 300_000})
    return data.replace(struct.pack("<I", 300_000), struct.pack("<I", 10))


def _bad_crc(_sandbox) -> bytes:
    """A stored entry whose bytes no longer match their CRC."""
    data = _zip({**_good(), "cat/bad.png": b"A" * 500}, zipfile.ZIP_STORED)
    return data.replace(b"A" * 50, b"B" * 50, 1)


def _name_with_nul(_sandbox) -> bytes:
    data = _zip({**_good(), "cat/aXb.png": image_bytes(seed=5)})
    return data.replace(b"cat/aXb.png", b"cat/a\0b.png")


def _thousand_classes(count: int) -> Callable[[Path], bytes]:
    def build(_sandbox) -> bytes:
        return _zip({
            f"c{c:04d}/{n}.png": image_bytes(size=(8, 8), color=(c % 256, c // 256, 100 * n))
            for c in range(count) for n in range(2)
        })
    return build


# ---------------------------------------------------------------- building images

def _encode(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's first bytes)."""
    data = bytearray(image_bytes(size=(1, 1)))
    header = data.index(b"IHDR")
    data[header + 4 : header + 12] = struct.pack(">II", width, height)
    data[header + 17 : header + 21] = struct.pack(">I", zlib.crc32(bytes(data[header : header + 17])))
    return bytes(data)


def _sixteen_bit() -> bytes:
    return _encode(Image.fromarray(np.linspace(0, 65535, 16 * 12, dtype=np.uint16).reshape(12, 16)))


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (16, 12), 0)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.putpixel((3, 3), 1)
    return _encode(image, transparency=0)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 12), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 32x16 sideways: shown rotated 90 degrees, 16x32
    return _encode(Image.new("RGB", (32, 16), (10, 200, 30)), "JPEG", exif=exif)


def _size_of(relpath: str, size: tuple[int, int]) -> Callable[[Dataset], None]:
    def check(dataset: Dataset) -> None:
        row = dataset.items[dataset.items["relpath"] == relpath].iloc[0]
        assert (row.width, row.height) == size
    return check


def _nothing_named(name: str, dataset: Dataset) -> None:
    assert not list(extraction_folder(dataset).rglob(name)), f"{name} was extracted from a nested archive"


def _counts(expected: dict[str, int], dataset: Dataset) -> None:
    assert dataset.class_counts() == expected


def _every_class_in_train_and_val(dataset: Dataset) -> None:
    assert dataset.class_counts("train") and min(dataset.class_counts("train").values()) == 1
    assert min(dataset.class_counts("val").values()) == 1


def _csv_images() -> dict[str, bytes]:
    return {f"{n}.png": image_bytes(size=(16, 12), seed=n) for n in range(6)}


def _csv(text: str | bytes, **extra) -> Callable[[Path], bytes]:
    return lambda _sandbox: _zip({**_csv_images(), "labels.csv": text, **extra})


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _split_images(split: str, labels: tuple[str, ...], seed: int) -> dict[str, bytes]:
    """Two distinct images per class under ``<split>/<class>/``."""
    return {f"{split}/{label}/{n}.png": image_bytes(seed=seed + 10 * c + n) for c, label in enumerate(labels)
            for n in range(2)}


GOOD_CSV = "file,label\n0.png,cat\n1.png,cat\n2.png,cat\n3.png,dog\n4.png,dog\n5.png,dog\n"
LONG_FILE = f"cat/{'a' * 300}.png"
DEEP = "/".join(["d" * 250] * 17)  # every name fits NAME_MAX, the whole path (4267 bytes) does not fit PATH_MAX

# ---------------------------------------------------------------- the rows: the bad-input list of issue 7

ROWS: dict[str, Row] = {
    # --- zip slip: entries aimed outside the dataset folder are skipped, never written
    "slip-dotdot": Row(
        _with({"../../../sentinel/evil.png": image_bytes()}),
        skipped={"../../../sentinel/evil.png": r"^unsafe path: '\.\.'"}),
    "slip-dotdot-inside-a-class": Row(
        _with({"cat/../../../../sentinel/evil.png": image_bytes()}),
        skipped={"cat/../../../../sentinel/evil.png": r"^unsafe path"}),
    "slip-backslashes": Row(
        _with({"..\\..\\..\\sentinel\\evil.png": image_bytes()}),
        skipped={"../../../sentinel/evil.png": r"^unsafe path"}),
    "slip-absolute-path": Row(
        _with(lambda sandbox: {str(sandbox / "sentinel" / "abs.png"): image_bytes()}),
        skipped=lambda sandbox: {str(sandbox / "sentinel" / "abs.png"): r"^unsafe path: absolute"}),
    "slip-drive-letters": Row(
        _with({"C:/Windows/evil.png": image_bytes(), "c:\\evil\\evil.png": image_bytes()}),
        skipped={"C:/Windows/evil.png": r"absolute", "c:/evil/evil.png": r"absolute"}),
    "slip-symlink-entry": Row(
        lambda _sandbox: _zip([*_good().items(), _link("cat/link.png", "/etc/passwd")]),
        skipped={"cat/link.png": r"^symbolic link"}),
    "slip-symlink-folder-then-files-through-it": Row(
        lambda sandbox: _zip([*_good().items(), _link("evil", str(sandbox / "sentinel")),
                              ("evil/0.png", image_bytes(seed=20)), ("evil/1.png", image_bytes(seed=21))]),
        skipped={"evil": r"^symbolic link"},
        classes=("cat", "dog", "evil")),  # "evil" became a plain folder inside the dataset
    "slip-nul-in-a-name": Row(
        _name_with_nul,  # zipfile cuts the name at the NUL
        skipped={"cat/a": r"not an image file \(no extension\)"}),
    "slip-control-characters-in-names": Row(
        _with({"ca\nt/0.png": image_bytes(seed=30), "ca\nt/1.png": image_bytes(seed=31),
               "dog/tab\t.png": image_bytes()}),
        skipped={"ca\nt/0.png": "line break or control character", "dog/tab\t.png": "control character"},
        classes=("cat", "dog")),
    "slip-upload-named-with-dotdot": Row(_with({}), name="../../../sentinel/évil name.zip"),
    "slip-upload-with-a-very-long-name": Row(_with({}), name="x" * 400 + ".zip"),
    # --- zip bombs: refused as a whole, naming the limit; nested or lying entries are not expanded
    "bomb-compression-ratio": Row(
        _with({"cat/filler.bin": bytes(2 * 1024 * 1024)}),
        error=r"'cat/filler.bin' expands \d+x, over the limit of 200x .*zip bomb.*TLTOOLS_MAX_RATIO"),
    "bomb-declared-total-size": Row(
        lambda _sandbox: _patch_headers(_zip(_good()), None, 24, 3 * 1024**3, "<I"),  # 6 entries "of 3 GiB"
        error=r"unpacks to 19327352832 bytes, over the limit .*TLTOOLS_MAX_TOTAL_BYTES"),
    "bomb-total-size-from-the-environment": Row(
        _with({"cat/big.bin": np.random.default_rng(0).bytes(300_000)}),
        env={"TLTOOLS_MAX_TOTAL_BYTES": "200000"},
        error=r"over the limit of 200000 .*TLTOOLS_MAX_TOTAL_BYTES"),
    "bomb-headers-lie-about-the-size": Row(
        _lying_size,
        skipped={"cat/filler.bin": r"^damaged inside the archive"}),
    "bomb-too-many-entries": Row(
        _with({f"cat/extra{n}.png": image_bytes(seed=n) for n in range(30)}),
        env={"TLTOOLS_MAX_ENTRIES": "20"},
        error=r"36 entries, over the limit of 20 .*TLTOOLS_MAX_ENTRIES"),
    "bomb-overlapping-entries": Row(
        _overlapping_entries,
        items=("cat/kernel.png",),
        skipped={f"cat/copy{n}.png": r"^damaged inside the archive" for n in range(3)}),
    "bomb-nested-zips-are-not-expanded": Row(
        _with({"inner.zip": _zip({"cat/filler.bin": bytes(2 * 1024 * 1024)}), "dog/more.zip": _zip(_good()),
               "cat/old.tar.gz": b"\x1f\x8b\x08\0" + bytes(20)}),
        skipped={"inner.zip": r"^nested archive \(\.zip\): archives inside the upload are not expanded",
                 "dog/more.zip": r"^nested archive", "cat/old.tar.gz": r"^nested archive \(\.gz\)"},
        check=lambda dataset: _nothing_named("filler.bin", dataset)),
    "bomb-only-nested-zips": Row(
        lambda _sandbox: _zip({"part1.zip": _zip(_good()), "part2.zip": _zip(_good())}),
        error=r"^no images found in upload\.zip: 2 file\(s\) skipped: part1\.zip, part2\.zip "
              r"\(nested archive \(\.zip\): archives inside the upload are not expanded"),
    "bomb-image-with-huge-pixel-count": Row(
        _with({"cat/bomb.png": _png_claiming(50_000, 50_000)}),
        skipped={"cat/bomb.png": r"^decompression bomb"}),
    "bomb-image-over-the-pixel-limit": Row(
        _with({"cat/big.png": _png_claiming(10_000, 9_000)}),
        skipped={"cat/big.png": r"^decompression bomb: 10000x9000 .* over the limit .*TLTOOLS_MAX_IMAGE_PIXELS"}),
    # --- not a zip, or a damaged one
    "zip-0-bytes": Row(lambda _sandbox: b"", error=r"^upload\.zip is not a readable zip archive"),
    "zip-that-is-text": Row(lambda _sandbox: b"hello, I am a text file", error=r"not a readable zip archive"),
    "zip-that-is-a-png": Row(lambda _sandbox: image_bytes(), error=r"not a readable zip archive"),
    "zip-truncated-end": Row(lambda _sandbox: _zip(_good())[:-30], error=r"not a readable zip archive"),
    "zip-truncated-half": Row(lambda _sandbox: _half(_zip(_good())), error=r"not a readable zip archive"),
    "zip-with-junk-in-front": Row(lambda _sandbox: b"MZ" + bytes(1000) + _zip(_good()), classes=("cat", "dog")),
    "zip-empty": Row(
        lambda _sandbox: _zip({}),
        error=r"^no images found in upload\.zip: the archive or folder holds no files"),
    "zip-only-folders": Row(
        lambda _sandbox: _zip({"cat/": b"", "dog/": b""}),
        error=r"^no images found in upload\.zip: the archive or folder holds no files"),
    "zip-only-clutter": Row(
        lambda _sandbox: _zip({"__MACOSX/cat/._0.png": b"\0\5", ".DS_Store": b"\0", "Thumbs.db": b"",
                               "cat/notes.txt": "hi"}),
        error=r"^no images found in upload\.zip: 4 file\(s\) skipped: cat/notes\.txt \(not an image file "
              r"\(\.txt\)\); \.DS_Store \(operating-system file .* 1 more for other reasons"),
    "zip-every-entry-encrypted": Row(
        lambda _sandbox: _patch_headers(_zip(_good()), 6, 8, 0x1),
        error=r"^no images found in upload\.zip: 6 file\(s\) skipped: cat/0\.png, cat/1\.png and 4 more "
              r"\(encrypted: password-protected"),
    "zip-unsupported-compression": Row(
        lambda _sandbox: _patch_headers(_zip(_good()), 8, 10, 99),
        error=r"^no images found.*compressed with an unsupported method \(99\)"),
    "zip-entry-with-a-bad-crc": Row(
        _bad_crc,
        skipped={"cat/bad.png": r"^damaged inside the archive"}),
    "zip-duplicate-entries": Row(
        lambda _sandbox: _zip([*_good().items(), ("cat/0.png", image_bytes(seed=77))]),
        items=("cat/0.png",),  # the first copy
        skipped={"cat/0.png": r"^duplicate entry"}),
    "zip-file-and-folder-with-the-same-name": Row(
        _with({"cat/x.png": image_bytes(seed=40), "cat/x.png/y.png": image_bytes(seed=41)}),
        items=("cat/x.png",),
        skipped={"cat/x.png/y.png": r"^clashes with another entry"}),
    # --- classes
    "classes-only-one": Row(
        lambda _sandbox: _zip(class_images(("cat",), per_class=5)),
        error=r"^only one class found \('cat'\)"),
    "classes-one-with-one-image": Row(
        _with({"owl/0.png": image_bytes(seed=50)}),
        error=r"^class 'owl' has only 1 usable image; .*one to train on, one to validate"),
    "classes-one-whose-second-image-is-broken": Row(
        _with({"owl/0.png": image_bytes(seed=50), "owl/1.png": b"junk"}),
        error=r"^class 'owl' has only 1 usable image"),
    "classes-several-with-one-image": Row(
        _with({f"c{n}/0.png": image_bytes(seed=60 + n) for n in range(7)}),
        error=r"^classes 'c0', 'c1', 'c2', 'c3', 'c4' and 2 more have only 1 usable image"),
    "classes-a-thousand": Row(_thousand_classes(1000), check=_every_class_in_train_and_val),
    "classes-a-thousand-and-one": Row(
        _thousand_classes(1001),
        error=r"^1001 classes is over the limit of 1000 .*TLTOOLS_MAX_CLASSES"),
    # --- images: damaged ones are skipped with the reason, unusual but valid ones load
    "image-corrupt": Row(
        _with({"cat/noise.png": np.random.default_rng(1).bytes(300)}),
        skipped={"cat/noise.png": r"^not a picture in a format this app reads"}),
    "image-truncated-jpeg": Row(
        _with({"cat/half.jpg": _half(image_bytes(fmt="JPEG", seed=3))}),
        skipped={"cat/half.jpg": r"^corrupt or truncated image"}),
    "image-truncated-png": Row(
        _with({"cat/half.png": _half(image_bytes(seed=4))}),
        skipped={"cat/half.png": r"^corrupt or truncated image"}),
    "image-0-bytes": Row(
        _with({"cat/empty.png": b""}),
        skipped={"cat/empty.png": r"^empty file \(0 bytes\)"}),
    "image-every-one-broken": Row(
        lambda _sandbox: _zip({"cat/0.png": b"x", "cat/1.png": b"", "dog/0.jpg": b"\xff\xd8\xff"}),
        error=r"^no readable images in upload\.zip: 3 file\(s\) skipped: cat/0\.png, dog/0\.jpg \(not a picture "
              r"in a format this app reads \(JPEG, PNG, BMP, GIF, WebP, TIFF\)\); cat/1\.png \(empty file \(0 bytes\)\); every image file is damaged"),
    "image-16-bit": Row(_with({"cat/deep.png": _sixteen_bit()}), items=("cat/deep.png",)),
    "image-cmyk": Row(
        _with({"cat/print.jpg": _encode(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), "JPEG")}),
        items=("cat/print.jpg",)),
    "image-palette-with-transparency": Row(_with({"cat/logo.png": _palette_with_transparency()}),
                                           items=("cat/logo.png",)),
    "image-animated-gif": Row(_with({"cat/moving.gif": _animated_gif()}), items=("cat/moving.gif",)),
    "image-exif-rotated": Row(
        _with({"cat/sideways.jpg": _exif_rotated()}),
        items=("cat/sideways.jpg",),
        check=_size_of("cat/sideways.jpg", (16, 32))),
    "image-extension-on-a-non-image": Row(
        _with({"cat/notes.jpg": "just text", "dog/page.png": "<html><body>hi</body></html>",
               "dog/packed.png": _zip(_good())}),
        skipped={"cat/notes.jpg": r"^not a picture in a format this app reads", "dog/page.png": r"^not a picture in a format this app reads",
                 "dog/packed.png": r"^not a picture in a format this app reads"}),
    "image-with-the-wrong-extension": Row(
        _with({"cat/really-a-png.jpg": image_bytes(seed=8)}),
        items=("cat/really-a-png.jpg",)),
    "image-non-image-files": Row(
        _with({"cat/notes.txt": "x", "dog/model.h5": b"\x89HDF", "dog/NOEXT": b"?"}),
        skipped={"cat/notes.txt": r"^not an image file \(\.txt\)", "dog/model.h5": r"^not an image file \(\.h5\)",
                 "dog/NOEXT": r"^not an image file \(no extension\)"}),
    # --- file names
    "names-unicode": Row(
        lambda _sandbox: _zip({"chats noirs/été 1.png": image_bytes(seed=1),
                               "chats noirs/été 2.png": image_bytes(seed=2),
                               "犬/写真 1.png": image_bytes(seed=3), "犬/写真 2.png": image_bytes(seed=4),
                               "😀/ü.png": image_bytes(seed=5), "😀/ñ.png": image_bytes(seed=6)}),
        classes=("chats noirs", "犬", "😀")),
    "names-with-spaces": Row(
        lambda _sandbox: _zip({" lead/ a .png": image_bytes(seed=1), " lead/b  c.png": image_bytes(seed=2),
                               "trail /d .png": image_bytes(seed=3), "trail /e.png": image_bytes(seed=4)}),
        classes=(" lead", "trail ")),
    "names-file-name-over-255-bytes": Row(
        _with({LONG_FILE: image_bytes(seed=9)}),
        skipped={LONG_FILE: r"^name too long for the file system: 'a+\.\.\.' is 304 bytes, the limit is 255"}),
    "names-folder-name-over-255-bytes": Row(
        _with({f"{'b' * 300}/0.png": image_bytes(seed=9), f"{'b' * 300}/1.png": image_bytes(seed=10)}),
        skipped={f"{'b' * 300}/0.png": r"^name too long", f"{'b' * 300}/1.png": r"^name too long"},
        classes=("cat", "dog")),
    "names-100-characters-but-300-bytes": Row(
        _with({f"cat/{'写' * 100}.png": image_bytes(seed=9)}),
        skipped={f"cat/{'写' * 100}.png": r"^name too long .* is 304 bytes"}),
    "names-path-over-path-max": Row(
        _with({f"{DEEP}/x.png": image_bytes(seed=9)}),
        skipped={f"{DEEP}/x.png": r"^path too long for the file system"}),
    "names-classes-differing-only-in-case": Row(
        _with({"Cat/0.png": image_bytes(seed=70), "Cat/1.png": image_bytes(seed=71)}),
        classes=("Cat", "cat", "dog"),
        warning=r"differ only in letter case .*'Cat' and 'cat'"),
    "names-files-differing-only-in-case": Row(
        _with({"cat/a.JPG": image_bytes(fmt="JPEG", seed=72), "cat/a.jpg": image_bytes(fmt="JPEG", seed=73)}),
        items=("cat/a.JPG", "cat/a.jpg")),
    # --- CSV labels
    "csv-without-a-label-column": Row(
        _csv("file\n0.png\n1.png\n2.png\n"),
        error=r"labels\.csv names the images in column 'file' but has no label column"),
    "csv-without-a-file-column": Row(
        _csv("colour,size\nred,1\nblue,2\n"),
        error=r"^no images found in upload\.zip: 7 file\(s\) skipped: 0\.png, 1\.png and 4 more \(not inside a "
              r"class folder\); labels\.csv \(CSV file not used: none of its columns names the images\)"),
    "csv-naming-unknown-files": Row(
        _csv(GOOD_CSV + "ghost.png,dog\n../../sentinel/x.png,cat\n/etc/passwd,cat\n"),
        skipped={"ghost.png": r"row 8 of labels\.csv names an image that is not in the dataset",
                 "../../sentinel/x.png": r"row 9 .*not in the dataset", "/etc/passwd": r"row 10 .*not in the dataset"}),
    "csv-duplicate-rows": Row(
        _csv(GOOD_CSV + "0.png,cat\n3.png,cat\n"),
        items=("0.png", "3.png"),  # labelled by their first rows
        skipped={"0.png": r"row 8 of labels\.csv repeats the image of row 2",
                 "3.png": r"row 9 of labels\.csv repeats the image of row 5"},
        check=lambda dataset: _counts({"cat": 3, "dog": 3}, dataset)),
    "csv-labels-with-odd-characters": Row(
        _csv('file,label\n0.png,../x\n1.png,../x\n2.png,"a\nb"\n3.png,"a\r\nb"\n'
             '4.png,"=1+1, 😀"\n5.png,"=1+1, 😀"\n'),
        classes=("../x", "=1+1, 😀", "a b"),
        warning=r"label\(s\) in labels\.csv held line breaks .*'a\\nb' became 'a b'"),
    "csv-empty-labels": Row(
        _csv(GOOD_CSV.replace("2.png,cat", "2.png,  ")),
        skipped={"2.png": r"row 4 .*empty label"}),
    "csv-unknown-split-value": Row(
        _csv("file,label,split\n0.png,cat,train\n1.png,cat,holdout\n2.png,dog,train\n"),
        error=r"row 3 of labels\.csv: split 'holdout' is not train, val or test"),
    "csv-0-bytes": Row(_csv(b""), error=r"^labels\.csv is not a readable CSV file"),
    "csv-not-utf-8": Row(
        _csv("file,label\n0.png,café\n1.png,café\n2.png,thé\n3.png,thé\n".encode("latin-1")),
        error=r"labels\.csv is not a readable CSV file .*save it as UTF-8"),
    # --- pre-split layouts whose splits disagree
    "pre-split-with-different-class-sets": Row(
        lambda _sandbox: _zip({**class_images(("cat", "dog"), 3, (16, 12), "train/"),
                               **_split_images("val", ("cat", "owl"), seed=80),
                               **_split_images("test", ("dog", "bat"), seed=120)}),
        classes=("cat", "dog"),
        skipped={"val/owl/0.png": r"class 'owl' has no training images",
                 "test/bat/1.png": r"class 'bat' has no training images"},
        warning=r"classes with no training images were left out: bat, owl"),
    "pre-split-naming-a-split-twice": Row(
        lambda _sandbox: _zip({**class_images(prefix="train/"), **class_images(prefix="val/"),
                               **class_images(prefix="validation/")}),
        error=r"split folders \['train', 'val', 'validation'\] name the same split twice"),
    "pre-split-with-one-training-class": Row(
        lambda _sandbox: _zip({**class_images(("cat",), prefix="train/"),
                               **class_images(("cat", "dog"), prefix="val/")}),
        error=r"^only one class found \('cat'\)"),
    # --- split settings a tampered session could send: refused before anything is extracted
    "settings-val-fraction-over-1": Row(
        _with({}), settings={"val_fraction": 1.5},
        error=r"^val_fraction=1\.5 is not allowed; use a number from 0 to 0\.85"),
    "settings-fractions-leaving-nothing-to-train": Row(
        _with({}), settings={"val_fraction": 0.5, "test_fraction": 0.45},
        error=r"val_fraction \+ test_fraction = 0\.95 leaves too few"),
    "settings-fraction-not-a-number": Row(
        _with({}), settings={"test_fraction": "ten percent"},
        error=r"^test_fraction='ten percent' is not allowed; use a number"),
    "settings-negative-seed": Row(_with({}), settings={"seed": -1}, error=r"^seed=-1 is not allowed; use a whole number from 0"),
}

@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    """A folder holding TLTOOLS_HOME (``home``), the cache, the current folder and a ``sentinel`` nothing may touch.

    Limits come from the defaults: every ``TLTOOLS_*`` limit variable is unset.
    """
    for name in ("home", "cache", "cwd", "sentinel"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("TLTOOLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TLTOOLS_CACHE", str(tmp_path / "cache"))
    for field in dataclasses.fields(Limits):
        monkeypatch.delenv("TLTOOLS_" + field.name.upper(), raising=False)
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_hostile_upload_is_refused_in_one_line_or_loads_reporting_it(sandbox, monkeypatch, row):
    data = row.build(sandbox)
    for variable, value in row.env.items():
        monkeypatch.setenv(variable, value)
    before = tree(sandbox)
    datasets = paths.datasets_dir()

    try:
        dataset = load_dataset(UploadedFile(data, row.name), **{**APP_SETTINGS, **row.settings},
                               on_progress=lambda stage, done, total: None)
    except TLToolsError as error:
        message = str(error)
        assert row.error, f"expected a load, got: {message}"
        assert re.search(row.error, message), message
        assert "\n" not in message and "Traceback" not in message and message.strip() == message
        assert not datasets.exists() or list(datasets.iterdir()) == [], "a refused upload leaves nothing behind"
    else:
        assert not row.error, f"expected an error matching {row.error!r}, but it loaded"
        _check_loaded(row, dataset, data, sandbox)

    assert written_outside(before, tree(sandbox), data) == []
    assert list((sandbox / "sentinel").iterdir()) == [] and list((sandbox / "cwd").iterdir()) == []
    assert leftovers(datasets) == []


def _check_loaded(row: Row, dataset: Dataset, data: bytes, sandbox: Path) -> None:
    top = extraction_folder(dataset)
    assert top.parent == paths.datasets_dir().resolve()
    beside = sorted(path.name for path in top.parent.iterdir() if not _LEASE.fullmatch(path.name))
    assert beside == sorted([top.name, top.name + ".json"])  # the folder and its manifest (and any lease file)
    assert unaccounted(data, dataset) == []
    assert all(path.is_file() and path.resolve().is_relative_to(top) for split in ("train", "val", "test")
               for path in dataset.paths(split))
    assert all(item.reason.strip() and "\n" not in item.reason for item in dataset.skipped)
    assert dataset.source == row.name
    reasons: dict[str, list[str]] = {}
    for item in dataset.skipped:
        reasons.setdefault(item.path, []).append(item.reason)
    assert all(len(set(found)) == len(found) for found in reasons.values()), "a file is reported twice"
    expected = row.skipped(sandbox) if callable(row.skipped) else row.skipped
    prefix = Path(dataset.root).resolve().relative_to(top).as_posix()
    items = {relpath if prefix == "." else f"{prefix}/{relpath}" for relpath in dataset.items["relpath"]}
    for path, pattern in expected.items():
        assert path in reasons, f"{path!r} not reported as skipped; skipped: {sorted(reasons)}"
        assert any(re.search(pattern, reason) for reason in reasons[path]), reasons[path]
        assert path not in items or path in row.items  # a duplicate entry's first copy is an image
    assert set(row.items) <= items, sorted(set(row.items) - items)
    if row.warning:
        assert any(re.search(row.warning, warning) for warning in dataset.warnings), dataset.warnings
    if row.classes is not None:
        assert dataset.classes == list(row.classes)
    if row.check:
        row.check(dataset)
