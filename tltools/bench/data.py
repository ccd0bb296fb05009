"""The benchmark's data: the shared flower set when present, generated images otherwise.

:func:`split_folders` lays out tltools' exact split as ``split/class/file``
folders of symbolic links, which is what ``flow_from_directory`` reads, so
both pipelines train and validate on the same images.
"""

import concurrent.futures
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tltools.data.dataset import Dataset

SHARED_FLOWERS = Path("shared") / "datasets" / "flowers12"


def default_data() -> Path | None:
    """Return ``../shared/datasets/flowers12`` (beside the repository, or the current folder) if it exists."""
    repository = Path(__file__).resolve().parents[2]
    for candidate in (repository.parent / SHARED_FLOWERS, Path("..") / SHARED_FLOWERS):
        if candidate.is_dir():
            return candidate
    return None


def generate_dataset(root: Path | str, *, images: int, image_size: int, classes: int = 12, seed: int = 0) -> Path:
    """Write ``images`` JPEGs of ``image_size`` pixels in ``classes`` class folders and return ``root``.

    Each class has its own colour and shape (ellipse, rectangle or triangle)
    drawn at a random place and size over noise: learnable, but not by one pixel.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    hues = rng.integers(30, 226, size=(classes, 3))
    jobs = [(root / f"class_{index % classes:02d}" / f"{index:06d}.jpg", index % classes, int(rng.integers(2**31)))
            for index in range(images)]
    for folder in {path.parent for path, _, _ in jobs}:
        folder.mkdir(parents=True, exist_ok=True)

    def write(job) -> None:
        path, label, image_seed = job
        local = np.random.default_rng(image_seed)
        pixels = np.clip(local.normal(128, 40, (image_size, image_size, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        low, high = sorted(local.integers(0, image_size, size=2))
        box = (int(low), int(low), int(max(high, low + image_size // 4)), int(max(high, low + image_size // 4)))
        colour = tuple(int(c) for c in np.clip(hues[label] + local.normal(0, 15, 3), 0, 255))
        shape = label % 3
        if shape == 0:
            draw.ellipse(box, fill=colour)
        elif shape == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=colour)
        image.save(path, "JPEG", quality=90)

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(write, jobs))
    return root


def split_folders(dataset: Dataset, root: Path | str) -> dict[str, Path]:
    """Lay out the dataset's split as ``root/<split>/<class>/<n>_<file>`` symbolic links.

    Returns:
        The folder of each non-empty split.
    """
    root = Path(root)
    folders = {}
    for split in ("train", "val", "test"):
        rows = dataset.split(split)
        if rows.empty:
            continue
        folders[split] = root / split
        for name in dataset.classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for number, (relpath, label) in enumerate(zip(rows["relpath"], rows["label"])):
            link = root / split / label / f"{number:06d}_{Path(relpath).name}"
            link.symlink_to((dataset.root / relpath).resolve())
    return folders
