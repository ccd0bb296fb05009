"""Reading every candidate image once at ingest: is it usable, how big, which bytes.

Each file is read once: its bytes are hashed (SHA-1, to find exact duplicates
across splits) and decoded with Pillow through :func:`tltools.data.images.open_rgb`,
so a corrupt, truncated or oversized image is skipped with a reason here and
never reaches training.
"""

import concurrent.futures
import dataclasses
import hashlib
import os
from pathlib import Path

from tltools.data.archive import Skipped
from tltools.data.images import open_rgb
from tltools.data.layout import Candidate
from tltools.errors import TLToolsError


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    """A candidate image that decoded cleanly.

    Attributes:
        candidate: The labelled file.
        width: Width in pixels (after EXIF rotation).
        height: Height in pixels (after EXIF rotation).
        sha1: Hex SHA-1 of the file's bytes.
    """

    candidate: Candidate
    width: int
    height: int
    sha1: str


def check_images(
    root: Path, candidates: list[Candidate], *, max_pixels: int, workers: int | None = None, on_progress=None
) -> tuple[list[CheckedImage], list[Skipped]]:
    """Decode every candidate once and sort them into usable and skipped.

    Args:
        root: Dataset root the candidates' paths are relative to.
        candidates: Labelled image files.
        max_pixels: Images with more pixels are skipped as decompression bombs.
        workers: Decoding threads (Pillow releases the GIL); defaults to the CPU count.
        on_progress: Optional ``callable(done, total)`` called as images finish.

    Returns:
        The usable images in the candidates' order, and the skipped ones with reasons.
    """
    results: list[CheckedImage | Skipped] = [None] * len(candidates)  # type: ignore[list-item]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = {
            pool.submit(_check_one, root, candidate, max_pixels): index
            for index, candidate in enumerate(candidates)
        }
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if on_progress is not None:
                on_progress(done, len(candidates))
    checked = [result for result in results if isinstance(result, CheckedImage)]
    skipped = [result for result in results if isinstance(result, Skipped)]
    return checked, skipped


def _check_one(root: Path, candidate: Candidate, max_pixels: int) -> CheckedImage | Skipped:
    path = root / candidate.relpath
    try:
        data = path.read_bytes()
    except OSError as error:
        return Skipped(candidate.relpath, f"could not be read ({error.strerror or error})")
    if not data:
        return Skipped(candidate.relpath, "empty file (0 bytes)")
    try:
        image = open_rgb(data, max_pixels=max_pixels)
    except TLToolsError as error:
        return Skipped(candidate.relpath, str(error))
    return CheckedImage(candidate, image.width, image.height, hashlib.sha1(data).hexdigest())
