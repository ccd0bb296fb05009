"""Data augmentation as Keras preprocessing layers, each switchable on its own.

The augmenter works on batches of 0..255 float images and leaves their value
range alone (normalisation belongs to the model). It is applied in the input
pipeline, during training only, so saved models contain no augmentation.
"""

import dataclasses
from typing import Annotated, Literal

import keras
import numpy as np
from pydantic import Field

from tltools.errors import TLToolsError
from tltools.seeds import derive_seed


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """Which augmentations to apply, and how strongly.

    Attributes:
        flip: ``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"`` or None.
        rotation: Largest rotation as a fraction of a full turn (0.1 = ±36°); 0 turns it off.
        zoom: Largest zoom in or out as a fraction of the size; 0 turns it off.
        contrast: Largest contrast change as a fraction; 0 turns it off.
        translation: Largest shift as a fraction of width and height; 0 turns it off.
    """

    # Types, ranges and help are declared here once: TrainConfig validates them, the CLI's
    # --augment-* options and the Dataset page's widgets are made from them.
    flip: Annotated[Literal["horizontal", "vertical", "horizontal_and_vertical"] | None,
                    Field(description="random flips: horizontal, vertical or horizontal_and_vertical")] = None
    rotation: Annotated[float, Field(ge=0.0, le=1.0, description="largest rotation, a fraction of a full turn "
                                                                 "either way (0.1 = 36 degrees); 0 turns it off")] = 0.0
    zoom: Annotated[float, Field(ge=0.0, le=1.0, description="largest zoom in or out, a fraction of the size; "
                                                             "0 turns it off")] = 0.0
    contrast: Annotated[float, Field(ge=0.0, le=1.0, description="largest contrast change, a fraction; "
                                                                 "0 turns it off")] = 0.0
    translation: Annotated[float, Field(ge=0.0, le=1.0, description="largest shift, a fraction of width and "
                                                                    "height; 0 turns it off")] = 0.0

    @classmethod
    def light(cls) -> "AugmentOptions":
        """Return mild settings that suit most photos: horizontal flip, small rotation, zoom, contrast."""
        return cls(flip="horizontal", rotation=0.05, zoom=0.1, contrast=0.1, translation=0.0)

    @property
    def enabled(self) -> bool:
        """True when at least one augmentation is switched on."""
        return bool(self.flip) or any(v > 0 for v in (self.rotation, self.zoom, self.contrast, self.translation))


_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def build_augmenter(options: AugmentOptions, *, seed: int | None = None) -> keras.Sequential | None:
    """Return a Keras ``Sequential`` of random layers for ``options``, or None when all are off.

    Args:
        options: Which augmentations to use.
        seed: The run's seed: each random layer draws from its own stream derived from it and the
            layer's position, so the same seed gives the same augmentations and the layers draw
            independently of each other. None draws unseeded.

    Raises:
        TLToolsError: A flip mode is unknown or a strength is outside [0, 1].
    """
    if options.flip is not None and options.flip not in _FLIP_MODES:
        raise TLToolsError(f"flip={options.flip!r} is not one of {', '.join(_FLIP_MODES)} or None")
    for name in ("rotation", "zoom", "contrast", "translation"):
        value = getattr(options, name)
        if not 0.0 <= value <= 1.0:
            raise TLToolsError(f"augmentation {name}={value} must be between 0 and 1")
    # Each layer draws from its own seed stream (the run seed and the layer's position): with one shared
    # seed, every layer would draw the same numbers, so that every flipped image would also rotate one way.
    positions = iter(range(5))

    def own_seed():
        return derive_seed(seed, "augment", next(positions))

    layers = []
    if options.flip:
        layers.append(keras.layers.RandomFlip(options.flip, seed=own_seed()))
    if options.rotation:
        layers.append(keras.layers.RandomRotation(options.rotation, fill_mode="reflect", seed=own_seed()))
    if options.zoom:
        layers.append(keras.layers.RandomZoom(options.zoom, fill_mode="reflect", seed=own_seed()))
    if options.translation:
        layers.append(keras.layers.RandomTranslation(options.translation, options.translation, fill_mode="reflect",
                                                     seed=own_seed()))
    if options.contrast:
        layers.append(keras.layers.RandomContrast(options.contrast, value_range=(0, 255), seed=own_seed()))
    return keras.Sequential(layers, name="augmentation") if layers else None


def augmentation_preview(image: np.ndarray, options: AugmentOptions, *, count: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Return ``count`` augmented variants of one ``uint8`` (H, W, 3) image, as training would see them.

    With every augmentation off, the variants are the image itself.
    """
    augmenter = build_augmenter(options, seed=seed)
    batch = np.repeat(image[np.newaxis].astype("float32"), count, axis=0)
    if augmenter is not None:
        batch = keras.ops.convert_to_numpy(augmenter(batch, training=True))
    return [np.clip(variant, 0, 255).astype(np.uint8) for variant in batch]
