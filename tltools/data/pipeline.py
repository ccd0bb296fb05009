"""The ``tf.data`` input pipeline: decode once, then shuffle, batch, augment, prefetch.

Images are decoded and resized once, with the same function prediction uses
(:func:`tltools.data.images.load_image`), into one ``uint8`` array; every epoch
then only gathers batches from it. An array larger than the memory budget
(``TLTOOLS_DECODE_MEMORY_BYTES``, default 2 GiB) goes to a ``.npy`` file under
``cache_dir()/"decoded"`` instead, read back batch by batch
(:class:`tltools.data.array_store.NpyRows`), and is reused by later runs on the
same files. Batches leave the pipeline as ``float32`` in 0..255: normalisation
is the model's job (each backbone has its own). Nothing ever holds a whole
dataset as ``float32``.
"""

import concurrent.futures
import contextlib
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tltools.data.array_store import NpyRows, npy_writer
from tltools.data.augment import AugmentOptions, build_augmenter
from tltools.data.dataset import Dataset
from tltools.data.images import LOADER_VERSION, load_image
from tltools.errors import TLToolsError
from tltools.fileio import disk_error_message, format_bytes, is_disk_error
from tltools.paths import cache_dir
from tltools.settings import Settings

_DECODE_CHUNK = 256  # images decoded between two writes to the disk cache

_logger = logging.getLogger(__name__)


def decode_memory_budget() -> int:
    """Return the bytes of decoded images kept in memory (``TLTOOLS_DECODE_MEMORY_BYTES``, default 2 GiB).

    Raises:
        TLToolsError: The variable is set to something other than a number >= 0.
    """
    return Settings.from_env().decode_memory_bytes


def decode_images(
    paths,
    size: int,
    *,
    workers: int | None = None,
    on_progress=None,
    memory_budget: int | None = None,
    cache_key: str | None = None,
    on_warning=None,
) -> np.ndarray | NpyRows:
    """Decode and resize images into one ``uint8`` array of shape (N, size, size, 3).

    Arrays up to ``memory_budget`` bytes are returned in memory. Larger ones are
    decoded into a ``.npy`` file under ``cache_dir()/"decoded"`` (written
    atomically, a chunk at a time) and returned as :class:`NpyRows`, which reads
    rows on demand; a later call for the same images reuses the file (and marks
    it used for :mod:`tltools.housekeeping`).

    When the disk refuses the cache file (full, read-only, no permission), the
    partial file is removed and the images are decoded into memory instead, if
    they fit in half the memory available; ``on_warning`` is told why.

    Args:
        paths: Image files (anything :func:`tltools.data.images.load_image` takes).
        size: Side of the square output, the backbone's input size.
        workers: Decoding threads; defaults to the CPU count.
        on_progress: Optional ``callable(done, total)``.
        memory_budget: Bytes the result may take in memory; defaults to
            :func:`decode_memory_budget`. Sources other than paths (bytes,
            file objects) without a ``cache_key`` are always decoded in memory.
        cache_key: Names the disk cache file; defaults to a digest of the
            resolved paths, their sizes and modification times. Callers that
            know the content (``Dataset.fingerprint``) pass a key derived from it.
        on_warning: Optional ``callable(message)`` told when the disk cache could not be
            written; the message is logged as a warning when it is None.

    Raises:
        TLToolsError: An image cannot be decoded (ingest normally skipped it already), or
            the disk cache cannot be written and the images do not fit in memory either.
    """
    paths = list(paths)
    budget = decode_memory_budget() if memory_budget is None else memory_budget
    shape = (len(paths), size, size, 3)
    progress = _Progress(len(paths), on_progress)
    fits = len(paths) * size * size * 3 <= budget
    key = None if fits else cache_key or _paths_key(paths)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        if key is None:
            images = np.empty(shape, dtype=np.uint8)
            _decode_into(images, paths, size, pool, progress)
            return images
        target = cache_dir() / "decoded" / f"{key}-{size}-v{LOADER_VERSION}.npy"
        cached = _open_rows(target)
        if cached is not None:
            if cached.shape == shape and cached.dtype == np.uint8:
                with contextlib.suppress(OSError):
                    os.utime(target)  # used now: housekeeping removes the least recently used first
                progress.advance(len(paths))
                return cached
            cached.close()
        try:
            with npy_writer(target, shape, np.uint8) as out:
                chunk = np.empty((_DECODE_CHUNK, size, size, 3), dtype=np.uint8)
                for start in range(0, len(paths), _DECODE_CHUNK):
                    part = paths[start:start + _DECODE_CHUNK]
                    _decode_into(chunk, part, size, pool, progress)
                    out.write(start, chunk[:len(part)])
        except OSError as error:
            if not is_disk_error(error):
                raise
            images = _in_memory_instead(shape, error, target, on_warning)
            progress.done = 0
            _decode_into(images, paths, size, pool, progress)
            return images
    return NpyRows(target)


def _open_rows(path: Path) -> NpyRows | None:
    """Open a cached ``.npy`` file, or return None when it is missing or damaged (then it is decoded again)."""
    try:
        return NpyRows(path)
    except (OSError, ValueError):
        return None


def _in_memory_instead(shape: tuple, error: OSError, target: Path, on_warning) -> np.ndarray:
    """Return an empty array for images the disk cache refused, after saying so; raise when memory is short too.

    Raises:
        TLToolsError: The array would take more than half the memory available.
    """
    need = int(np.prod(shape, dtype=np.int64))
    available = available_memory()
    problem = disk_error_message(error, target.parent, variable="TLTOOLS_CACHE")
    if available is not None and need > available // 2:
        raise TLToolsError(
            f"{problem}; the {shape[0]} decoded images ({format_bytes(need)}) do not fit in memory either "
            f"({format_bytes(available)} available)"
        )
    message = (f"the decoded-image cache could not be written ({problem}); "
               f"decoding the {shape[0]} images into memory instead ({format_bytes(need)})")
    if on_warning is None:
        _logger.warning("%s", message)
    else:
        on_warning(message)
    return np.empty(shape, dtype=np.uint8)


def available_memory() -> int | None:
    """Return the bytes of memory available to new allocations (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


class _Progress:
    """Counts decoded images and reports them to an optional ``callable(done, total)``."""

    def __init__(self, total: int, callback):
        self.total, self.callback, self.done = total, callback, 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.callback is not None:
            self.callback(self.done, self.total)


def _decode_into(out: np.ndarray, paths: list, size: int, pool, progress: _Progress) -> None:
    """Decode ``paths[i]`` into ``out[i]`` on the thread pool."""

    def decode(index: int) -> None:
        out[index] = load_image(paths[index], size)

    for _ in pool.map(decode, range(len(paths))):
        progress.advance()


def _paths_key(paths) -> str | None:
    """Return a digest of the files' resolved paths, sizes and modification times (None unless all are paths)."""
    if not all(isinstance(path, (str, os.PathLike)) for path in paths):
        return None
    digest = hashlib.sha256()
    for path in paths:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        digest.update(f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def make_tf_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    augment: AugmentOptions | None = None,
) -> tf.data.Dataset:
    """Return batches of (float32 images in 0..255, int32 labels) drawn from decoded arrays.

    Args:
        images: ``uint8`` array (N, H, W, 3), e.g. from :func:`decode_images` (in memory or
            :class:`NpyRows`).
        labels: Integer class indices, length N.
        batch_size: Images per batch.
        shuffle: Reshuffle the order every epoch.
        seed: Seed for shuffling and augmentation; the order and the augmentations depend on it alone,
            not on any process-wide random state.
        augment: Augmentations applied per batch, or None.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    augmenter = build_augmenter(augment, seed=seed) if augment is not None else None
    return _batches(images, None, labels, batch_size=batch_size, shuffle=shuffle, seed=seed, augmenter=augmenter)


def make_feature_dataset(
    features,
    labels: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Return batches of (float32 features, int32 labels) gathered from a feature array.

    Args:
        features: Array (M, ...) of cached activations, in memory or :class:`NpyRows`.
        labels: Integer class indices, one per example.
        rows: Row of ``features`` for each example; None means ``features`` has one row per label.
        batch_size: Examples per batch.
        shuffle: Reshuffle the order every epoch.
        seed: Seed of the shuffle.
    """
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} feature rows but {len(labels)} labels")
    return _batches(features, rows, labels, batch_size=batch_size, shuffle=shuffle, seed=seed, augmenter=None)


def _batches(array, rows, labels, *, batch_size: int, shuffle: bool, seed, augmenter) -> tf.data.Dataset:
    """Shuffle indices, batch them, gather the rows of ``array`` with numpy, cast to float32, prefetch."""
    labels = np.asarray(labels, dtype=np.int32)
    dtype = tf.as_dtype(array.dtype)
    row_shape = list(array.shape[1:])

    def gather(indices):
        return array[indices if rows is None else rows[indices]], labels[indices]

    def load_batch(indices):
        batch, batch_labels = tf.numpy_function(gather, [indices], [dtype, tf.int32])
        batch.set_shape([None, *row_shape])
        batch_labels.set_shape([None])
        return tf.cast(batch, tf.float32), batch_labels

    pipeline = _shuffled_indices(len(labels), seed) if shuffle else tf.data.Dataset.range(len(labels))
    pipeline = pipeline.batch(batch_size).map(load_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        # One call at a time: each random layer draws from its own seed generator, so batches augmented in
        # parallel would take its seeds in whatever order the threads run, and runs would differ.
        pipeline = pipeline.map(lambda batch, batch_labels: (augmenter(batch, training=True), batch_labels))
    return pipeline.prefetch(tf.data.AUTOTUNE)


def _shuffled_indices(count: int, seed: int | None) -> tf.data.Dataset:
    """Return 0..count-1 in a new random order on every pass, drawn from a generator the pipeline owns.

    ``Dataset.shuffle(seed=...)`` would mix its seed with TensorFlow's process-wide global seed, which
    any thread may set (``keras.utils.set_random_seed``); this order depends on ``seed`` alone.
    """
    generator = np.random.default_rng(seed)

    def permutation():
        return generator.permutation(count).astype(np.int64)

    def one_pass(_):
        order = tf.numpy_function(permutation, [], tf.int64, stateful=True)
        order.set_shape([count])
        return order

    return tf.data.Dataset.range(1).map(one_pass).unbatch()


def split_pipeline(
    dataset: Dataset,
    split: str,
    *,
    image_size: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    augment: AugmentOptions | None = None,
) -> tf.data.Dataset:
    """Decode one split of ``dataset`` and return its batched pipeline (see :func:`make_tf_dataset`)."""
    images = decode_images(dataset.paths(split), image_size)
    return make_tf_dataset(
        images, dataset.labels(split), batch_size=batch_size, shuffle=shuffle, seed=seed, augment=augment
    )
