"""The ``tf.data`` input pipeline: decode once, then shuffle, batch, augment, prefetch.

Images are decoded and resized once, with the same function prediction uses
(:func:`tltools.data.images.load_image`), into one ``uint8`` array; every epoch
then only gathers batches from it. Batches leave the pipeline as ``float32``
in 0..255: normalisation is the model's job (each backbone has its own).
"""

import concurrent.futures
import os

import numpy as np
import tensorflow as tf

from tltools.data.augment import AugmentOptions, build_augmenter
from tltools.data.dataset import Dataset
from tltools.data.images import load_image


def decode_images(paths, size: int, *, workers: int | None = None, on_progress=None) -> np.ndarray:
    """Decode and resize images into one ``uint8`` array of shape (N, size, size, 3).

    Args:
        paths: Image files (anything :func:`tltools.data.images.load_image` takes).
        size: Side of the square output, the backbone's input size.
        workers: Decoding threads; defaults to the CPU count.
        on_progress: Optional ``callable(done, total)``.

    Raises:
        TLToolsError: An image cannot be decoded (ingest normally skipped it already).
    """
    paths = list(paths)
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def decode(index: int) -> None:
        images[index] = load_image(paths[index], size)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for done, _ in enumerate(pool.map(decode, range(len(paths))), start=1):
            if on_progress is not None:
                on_progress(done, len(paths))
    return images


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
        images: ``uint8`` array (N, H, W, 3), e.g. from :func:`decode_images`.
        labels: Integer class indices, length N.
        batch_size: Images per batch.
        shuffle: Reshuffle the order every epoch.
        seed: Seed for shuffling and augmentation.
        augment: Augmentations applied per batch, or None.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    labels = np.asarray(labels, dtype=np.int32)
    height, width = images.shape[1:3]

    def gather(indices):
        return images[indices], labels[indices]

    def load_batch(indices):
        batch, batch_labels = tf.numpy_function(gather, [indices], [tf.uint8, tf.int32])
        batch.set_shape([None, height, width, 3])
        batch_labels.set_shape([None])
        return tf.cast(batch, tf.float32), batch_labels

    pipeline = tf.data.Dataset.range(len(images))
    if shuffle:
        pipeline = pipeline.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size).map(load_batch, num_parallel_calls=tf.data.AUTOTUNE)
    augmenter = build_augmenter(augment, seed=seed) if augment is not None else None
    if augmenter is not None:
        pipeline = pipeline.map(
            lambda batch, batch_labels: (augmenter(batch, training=True), batch_labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return pipeline.prefetch(tf.data.AUTOTUNE)


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
