"""Every image's pooled backbone features, from the trainer's own feature cache.

The analysis of a dataset's health works on the features a frozen backbone
computes for each image: the same numbers phase-1 training caches
(:mod:`tltools.training.feature_cache`, cut where the trainer cuts,
:func:`tltools.training.split_model.split_at_pooling`). A run trained with the
same backbone, weights and input size has usually filled the cache already, and
features extracted here are reused by the next run. ``flip=True`` gives the
features of the mirrored images (their own cache entry: the extractor starts
with a :class:`HorizontalFlip` layer, which the cache key records).
"""

import dataclasses
import time

import keras
import numpy as np
import pandas as pd

from tltools.data.dataset import Dataset
from tltools.data.pipeline import decode_images
from tltools.model.builder import build_model
from tltools.training.feature_cache import extract_features, feature_key, image_table, load_features
from tltools.training.split_model import split_at_pooling


class HorizontalFlip(keras.layers.Layer):
    """Mirrors images left to right (always, unlike ``RandomFlip``): the test-time augmentation of the features."""

    def call(self, inputs):
        """Return ``inputs`` (batch, height, width, channels) flipped along the width."""
        return keras.ops.flip(inputs, axis=2)


@dataclasses.dataclass(eq=False)
class Features:
    """Features of every image of a dataset, in :func:`image_table` order.

    Attributes:
        table: The images (``relpath``, ``label``, ``label_index``, ``split``, ``sha1``, ``row``, ...).
        arrays: One (images, size) ``float32`` array per backbone / view, in the order asked.
        names: What each array is (``efficientnet_lite0@224``, ``… flipped``).
        hits: Per array, whether it came from the cache.
        seconds: Time spent getting them (building, decoding, extracting).
    """

    table: pd.DataFrame
    arrays: list[np.ndarray]
    names: list[str]
    hits: list[bool]
    seconds: float

    def combined(self) -> np.ndarray:
        """Return every image's features as one row: each array L2-normalised, views of a backbone averaged first,
        backbones then concatenated (and the row normalised again)."""
        groups: dict[str, list[np.ndarray]] = {}
        for name, array in zip(self.names, self.arrays):
            groups.setdefault(name.removesuffix(" flipped"), []).append(_normalise(array))
        parts = [_normalise(np.mean(views, axis=0)) for views in groups.values()]
        return _normalise(np.concatenate(parts, axis=1))

    def views(self) -> list[np.ndarray]:
        """Return, per view (unflipped, flipped), the backbones' normalised features concatenated."""
        by_view: dict[bool, list[np.ndarray]] = {}
        for name, array in zip(self.names, self.arrays):
            by_view.setdefault(name.endswith(" flipped"), []).append(_normalise(array))
        return [_normalise(np.concatenate(parts, axis=1)) for parts in by_view.values()]


def _normalise(array: np.ndarray) -> np.ndarray:
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def dataset_features(
    dataset: Dataset,
    backbones: list[str] | tuple[str, ...] = ("efficientnet_lite0",),
    *,
    image_size: int | None = None,
    weights: str = "imagenet",
    flip: bool = False,
    batch_size: int = 32,
    on_progress=None,
) -> Features:
    """Return the pooled features of every image of ``dataset`` for each backbone, from the cache or extracted into it.

    Args:
        dataset: The images (every split).
        backbones: Registry names.
        image_size: Input side; None for each backbone's default.
        weights: The base weights, as :class:`~tltools.training.TrainConfig` names them.
        flip: Also the features of the mirrored images (test-time augmentation).
        batch_size: Images per forward pass.
        on_progress: Optional ``callable(stage: str, done: int, total: int)``.

    Raises:
        TLToolsError: A backbone is unknown, cannot be built at that size, or its weights are unusable.
    """
    started = time.time()
    table = image_table(dataset)
    paths = [dataset.root / relpath for relpath in table["relpath"]]
    report = on_progress or (lambda stage, done, total: None)
    arrays, names, hits = [], [], []
    for backbone in backbones:
        model = build_model(backbone, len(dataset.classes), weights=weights, input_size=image_size)
        size = int(model.input_shape[1])
        split = split_at_pooling(model)
        extractors = [("", split)]
        if flip:
            inputs = keras.Input(shape=split.extractor.input_shape[1:])
            flipped = keras.Model(inputs, split.extractor(HorizontalFlip(name="hflip")(inputs)),
                                  name=f"{split.extractor.name}_flipped")
            extractors.append((" flipped", dataclasses.replace(split, extractor=flipped)))
        images = None
        for suffix, part in extractors:
            key = feature_key(dataset, part, backbone=backbone, weights=weights, image_size=size, table=table)
            features = load_features(key)
            hit = features is not None
            if not hit:
                if images is None:
                    images = decode_images(paths, size, on_progress=lambda done, total: report("decoding", done, total))
                extract_features(part.extractor, [key], [(images, np.arange(len(paths)))], batch_size=batch_size,
                                 on_progress=lambda done, total, b=backbone: report(f"features of {b}", done, total))
                features = load_features(key)
            arrays.append(np.asarray(features[np.arange(len(paths))], dtype=np.float32).reshape(len(paths), -1))
            names.append(f"{backbone}@{size}{suffix}")
            hits.append(hit)
    return Features(table, arrays, names, hits, time.time() - started)
