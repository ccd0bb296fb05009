"""The on-disk cache of what a frozen backbone computes for every image of a dataset.

While the base is frozen (phase 1), or its lower part is (phase 2 with the top
unfrozen), it computes the same activations for an image in every epoch. They
are computed once per dataset and model (:func:`extract_features`), stored
under ``cache_dir()/"features"``, and reused by every later run that would
compute the same numbers (:func:`load_features`): the same images, backbone,
weights, input size and cut point (:func:`feature_key`).

One ``.npy`` file per key holds a row per image of the whole dataset, in
relative-path order (:func:`image_table`), whatever the split; a ``.json`` file
beside it describes it. Both are written atomically, the ``.npy`` first, and a
key counts as cached only when both are there and agree. Files are standard
``.npy`` (``np.load(path, mmap_mode="r")`` opens them); arrays above the
memory budget are read row by row (:class:`tltools.data.array_store.NpyRows`).
Deleting the folder is always safe.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from tltools import __version__, fileio
from tltools.data.array_store import NpyRows, load_rows, npy_writer
from tltools.data.dataset import Dataset
from tltools.data.images import LOADER_VERSION
from tltools.data.pipeline import decode_memory_budget
from tltools.paths import cache_dir
from tltools.training.split_model import SplitModel

# Bump when the layout of cached arrays changes (a change of the image loader bumps LOADER_VERSION).
CACHE_FORMAT = 1


def features_dir() -> Path:
    """Return the folder of the feature cache: ``cache_dir()/"features"``."""
    return cache_dir() / "features"


@dataclasses.dataclass(frozen=True)
class FeatureKey:
    """Names one cached array.

    Attributes:
        digest: SHA-256 of everything the cached numbers depend on.
        stem: File name without suffix: readable parts plus the start of the digest.
        description: What went into the digest (written to the ``.json`` file).
    """

    digest: str
    stem: str
    description: dict

    @property
    def npy_path(self) -> Path:
        """Where the array is stored."""
        return features_dir() / f"{self.stem}.npy"

    @property
    def json_path(self) -> Path:
        """Where its description is stored."""
        return features_dir() / f"{self.stem}.json"


def image_table(dataset: Dataset) -> pd.DataFrame:
    """Return the dataset's images in cache order (by relative path), numbered from 0.

    Columns: those of ``dataset.items`` plus ``row``, the image's row in a cached array.
    """
    table = dataset.items.sort_values("relpath", kind="stable").reset_index(drop=True)
    table["row"] = np.arange(len(table))
    return table


def image_list_digest(table: pd.DataFrame) -> str:
    """Return a SHA-256 of the images' relative paths and contents, in the table's order."""
    digest = hashlib.sha256()
    for relpath, sha1 in zip(table["relpath"], table["sha1"]):
        digest.update(f"{relpath}\0{sha1}\n".encode())
    return digest.hexdigest()


def weights_digest(model: keras.Model) -> str:
    """Return a SHA-256 of the values of every weight of ``model`` (trainable or not), in order.

    This identifies weights by what they are rather than where they came from:
    ImageNet weights, a weights file, a random initialisation with a given seed
    or an earlier run's fine-tuned base each hash to their own values.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def feature_key(dataset: Dataset, split: SplitModel, *, backbone: str, weights: str, image_size: int,
                table: pd.DataFrame | None = None) -> FeatureKey:
    """Return the cache key of ``split``'s activations over every image of ``dataset``.

    The digest covers the dataset fingerprint, the image list in cache order,
    the backbone, the values of the extractor's weights, the input size, the
    cut point (``pooling`` for pooled features, else the base layer cut after)
    and the extractor's layer types (so ``avg`` and ``max`` pooling differ).
    A change of any of them is a different key, so a stale entry is never read.

    Args:
        dataset: The images.
        split: The model cut (see :mod:`tltools.training.split_model`).
        backbone: Registry name of the backbone.
        weights: What the run asked for (``imagenet``, ``none``, a path); recorded, not hashed:
            the weight values are.
        image_size: Side of the square input.
        table: :func:`image_table` of ``dataset``, if already computed.
    """
    table = image_table(dataset) if table is None else table
    description = {
        "format": CACHE_FORMAT,
        "image_loader": LOADER_VERSION,
        "dataset_fingerprint": dataset.fingerprint,
        "image_list_sha256": image_list_digest(table),
        "images": len(table),
        "backbone": backbone,
        "weights_sha256": weights_digest(split.extractor),
        "image_size": int(image_size),
        "cut": split.cut,
        "extractor_layers": [f"{type(layer).__name__}:{layer.name}" for layer in split.extractor.layers],
        "feature_shape": list(split.feature_shape),
    }
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    description["weights"] = str(weights)
    cut = split.cut.replace("/", "_")
    return FeatureKey(digest, f"{backbone}-{image_size}px-{cut}-{digest[:20]}", description)


def load_features(key: FeatureKey, *, memory_budget: int | None = None) -> np.ndarray | NpyRows | None:
    """Return the cached array for ``key``, or None when it is not (completely) cached.

    Arrays up to ``memory_budget`` bytes (default: ``TLTOOLS_DECODE_MEMORY_BYTES``)
    are read into memory, larger ones are returned as :class:`NpyRows`. A hit
    refreshes the modification time of the ``.json`` file, which
    :mod:`tltools.housekeeping` reads as the entry's last use.
    """
    if not (key.npy_path.is_file() and key.json_path.is_file()):
        return None
    try:
        stored = fileio.read_json(key.json_path)
        rows = NpyRows(key.npy_path)
    except (OSError, ValueError):
        return None
    expected = (key.description["images"], *key.description["feature_shape"])
    if stored.get("digest") != key.digest or rows.shape != expected or rows.dtype != np.float32:
        rows.close()
        return None
    rows.close()
    with contextlib.suppress(OSError):
        os.utime(key.json_path)  # used now: housekeeping removes the least recently used first
    try:
        return load_rows(key.npy_path, memory_budget=decode_memory_budget() if memory_budget is None else memory_budget)
    except (OSError, ValueError):  # deleted or damaged since it was checked (a cleanup, a full disk): a miss
        return None


def extract_features(
    extractor: keras.Model,
    keys: list[FeatureKey],
    sources: list[tuple],
    *,
    batch_size: int = 32,
    on_progress=None,
) -> None:
    """Run ``extractor`` once over every image and store each of its outputs under its key.

    Read them back with :func:`load_features`.

    Args:
        extractor: Pixels 0..255 → one output per key (a list when several).
        keys: One :class:`FeatureKey` per output, in output order.
        sources: ``(images, rows)`` pairs: ``uint8`` images (in memory or
            :class:`NpyRows`) and, for each, its row in the cached arrays. Together they
            must cover every row once.
        batch_size: Images per forward pass.
        on_progress: Optional ``callable(done, total)``.

    Raises:
        OSError: The disk refused a write; nothing of these keys is left in the cache
            (:func:`tltools.fileio.is_disk_error` tells a full or read-only disk).
    """
    from tltools.distributed.extraction import current_share, extract_share  # imports nothing of training

    share = current_share()  # inside a data-parallel worker: only its share of the images, into shared arrays
    try:
        if share is None:
            _extract(extractor, keys, sources, batch_size, on_progress)
        else:
            extract_share(share, extractor, keys, sources, batch_size=batch_size, on_progress=on_progress,
                          describe=_describe)
    except BaseException:
        for key in keys:  # no entry without its description, no description of a missing entry
            for path in (key.json_path, key.npy_path):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        raise


def _extract(extractor, keys, sources, batch_size, on_progress) -> None:
    total = keys[0].description["images"]
    started, done = time.time(), 0
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(npy_writer(key.npy_path, (total, *key.description["feature_shape"]), np.float32))
                   for key in keys]
        for images, rows in sources:
            rows = np.asarray(rows)
            for start in range(0, len(rows), batch_size):
                batch = np.asarray(images[start:start + batch_size], dtype=np.float32)
                results = extractor.predict_on_batch(batch)
                results = results if isinstance(results, (list, tuple)) else [results]
                for output, result in zip(outputs, results):
                    output.write_rows(rows[start:start + batch_size], np.asarray(result, dtype=np.float32))
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, total)
    seconds = time.time() - started
    for key in keys:
        _describe(key, seconds)


def _describe(key: FeatureKey, seconds: float) -> None:
    """Write ``key``'s description beside its array, which makes the entry count as cached."""
    fileio.write_json(key.json_path, {
        **key.description, "digest": key.digest, "seconds": round(seconds, 2),
        "created": datetime.datetime.now().isoformat(timespec="seconds"), "tltools_version": __version__,
    })
