"""A controlled, reproducible domain shift: a dataset's test images under a fixed, seeded transformation.

:func:`make_shifted_target` applies a colour cast, a Gaussian blur and JPEG
quality 30 (every image the same transformation, a seeded per-image jitter of
the cast) to the test split of a dataset, and writes the result in two halves,
class by class: ``unlabeled/`` (flat file names, no labels: the adaptation
set) and ``labeled/<class>/`` (the evaluation set). Run it as
``python -m tltools.adapt.shift DATA OUT [--seed N]``.
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tltools.errors import TLToolsError

CAST = (1.25, 0.95, 0.65)  # warm colour cast: red up, blue down
BLUR_RADIUS = 2.0
JPEG_QUALITY = 30


def shift_image(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Return ``image`` under the shift: colour cast (±5 % jitter), Gaussian blur, JPEG quality 30."""
    pixels = np.asarray(image.convert("RGB"), np.float32)
    cast = np.array(CAST, np.float32) * rng.uniform(0.95, 1.05, size=3).astype(np.float32)
    pixels = np.clip(pixels * cast + 10.0, 0, 255).astype(np.uint8)
    blurred = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    buffer = io.BytesIO()
    blurred.save(buffer, "JPEG", quality=JPEG_QUALITY)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_shifted_target(data, out, *, seed: int = 0, split: str = "test", run=None) -> dict:
    """Write the shifted ``split`` of the dataset at ``data`` into ``out``: half unlabelled, half labelled.

    Args:
        data: A dataset folder (any layout :func:`tltools.data.load_dataset` reads); with ``run``,
            ignored (None is fine).
        out: A folder that must not exist yet.
        seed: Seed of the half split and the cast jitter.
        split: Which split to shift (``test`` by default).
        run: A run whose recorded split (``splits.csv``) says which images are in ``split``: use it
            for data without a given test split, so that no image the run trained on is shifted.

    Returns:
        ``{"unlabeled": N, "labeled": M, "out": path}``.

    Raises:
        TLToolsError: ``out`` exists, or the dataset has no images in ``split``.
    """
    from tltools.data import load_dataset

    out = Path(out)
    if out.exists():
        raise TLToolsError(f"{out} exists; give a new folder for the shifted images")
    if run is not None:
        from tltools import runs

        dataset = runs.load_run_dataset(runs.read_run(run))
    else:
        dataset = load_dataset(data, test_fraction=0.0)
    rows = dataset.split(split)
    if rows.empty:
        raise TLToolsError(f"the dataset at {data} has no given {split} images to shift; pass --run RUN to shift "
                           f"the {split} split that run recorded")
    rng = np.random.default_rng(seed)
    counts = {"unlabeled": 0, "labeled": 0}
    for label, group in rows.groupby("label", sort=True):
        order = rng.permutation(len(group))
        for position, index in enumerate(order):
            row = group.iloc[index]
            image = shift_image(Image.open(dataset.root / row["relpath"]), rng)
            stem = Path(row["relpath"]).stem
            if position % 2 == 0:
                target = out / "unlabeled" / f"{counts['unlabeled']:05d}_{stem}.jpg"
                counts["unlabeled"] += 1
            else:
                target = out / "labeled" / label / f"{stem}.jpg"
                counts["labeled"] += 1
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, "JPEG", quality=95)
    return {**counts, "out": str(out)}


def main(argv=None) -> int:
    """``python -m tltools.adapt.shift DATA OUT [--seed N]``: write the shifted halves; print the counts."""
    parser = argparse.ArgumentParser(prog="python -m tltools.adapt.shift", description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", help="shift the test split this run recorded (for data without a given test split)")
    args = parser.parse_args(argv)
    try:
        print(make_shifted_target(args.data, args.out, seed=args.seed, run=args.run))
    except TLToolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
