"""Grad-CAM: which part of an image made the model choose a class.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last
convolutional feature map by the mean gradient of the class score over that
channel, sums the weighted channels and keeps the positive part. In a tltools
model the last convolutional feature map is the output of the nested ``base``
model, so the model is run in three parts: the preprocessing layers before
``base``, ``base`` itself, and the head after it (pooling, dense, dropout,
``predictions``), whose layers are applied in order to the feature map.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tltools.data.images import load_image
from tltools.errors import TLToolsError
from tltools.model.builder import BASE_NAME
from tltools.prediction import input_size


@dataclasses.dataclass(frozen=True, eq=False)
class GradCam:
    """A Grad-CAM explanation of one image.

    Attributes:
        heatmap: ``float32`` (h, w) in 0..1 at the feature map's resolution;
            1 marks the strongest evidence for the class, all zeros means none.
        overlay: The image at the model's input size with the heatmap blended
            over it in a blue (low) to red (high) colour map.
        class_index: The class explained.
        probability: The model's probability of that class for the image.
    """

    heatmap: np.ndarray
    overlay: Image.Image
    class_index: int
    probability: float


def gradcam(model: keras.Model, image, *, class_index: int | None = None, alpha: float = 0.4) -> GradCam:
    """Explain a model's score for one class of one image.

    Args:
        model: A model from ``tltools.model.build_model`` or ``load_model``:
            layers in a chain with a nested model named ``base`` whose output
            is a 4-D feature map, ending in the ``predictions`` layer.
        image: Anything :func:`tltools.data.images.load_image` takes.
        class_index: The class to explain; defaults to the predicted one.
        alpha: Weight of the heatmap colours in the overlay, 0..1.

    Returns:
        The heatmap, the overlay, the class explained and its probability.

    Raises:
        TLToolsError: The model has no ``base`` feature map, ``class_index``
            or ``alpha`` is out of range, or the image cannot be read.
    """
    if not 0 <= alpha <= 1:
        raise TLToolsError(f"alpha={alpha!r} must be between 0 and 1")
    preprocessing, base, head = split_model(model)
    pixels = load_image(image, input_size(model))
    features = base(_apply(preprocessing, tf.constant(pixels[None], tf.float32)), training=False)
    if features.shape.rank != 4:
        raise TLToolsError(f"the base of model {model.name!r} outputs shape {features.shape}, not a 4-D feature map")
    with tf.GradientTape() as tape:
        tape.watch(features)
        hidden = _apply(head[:-1], features)
        probs = head[-1](hidden, training=False)
        index = _class_index(class_index, probs.numpy()[0])
        score = _class_scores(head[-1], hidden)[0, index]
    gradients = tape.gradient(score, features)
    heatmap = _cam(features.numpy()[0], gradients.numpy()[0])
    return GradCam(
        heatmap=heatmap,
        overlay=overlay(pixels, heatmap, alpha=alpha),
        class_index=index,
        probability=float(probs.numpy()[0, index]),
    )


def split_model(model: keras.Model) -> tuple[list, keras.layers.Layer, list]:
    """Return ``(layers before base, base, layers after base)``, input layer left out.

    Raises:
        TLToolsError: The model has no layer named ``base`` or nothing after it.
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [layer.name for layer in layers]
    if BASE_NAME not in names:
        raise TLToolsError(
            f"model {model.name!r} has no nested {BASE_NAME!r} model (layers: {', '.join(names)}); "
            "Grad-CAM needs a model built with tltools.model.build_model"
        )
    at = names.index(BASE_NAME)
    if at == len(layers) - 1:
        raise TLToolsError(f"model {model.name!r} ends at its {BASE_NAME!r} model; Grad-CAM needs a classifier head")
    return layers[:at], layers[at], layers[at + 1:]


def overlay(pixels: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4) -> Image.Image:
    """Blend a 0..1 heatmap, resized to the image and coloured, over a ``uint8`` (H, W, 3) image.

    Args:
        pixels: The image.
        heatmap: Values in 0..1, any resolution; resized bilinearly.
        alpha: Weight of the heatmap colours, 0..1.

    Returns:
        An RGB image the size of ``pixels``.
    """
    height, width = pixels.shape[:2]
    resized = np.asarray(Image.fromarray(heatmap.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR))
    colours = jet(np.clip(resized, 0.0, 1.0)) * 255.0
    blended = (1.0 - alpha) * pixels.astype(np.float32) + alpha * colours
    return Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8))


def jet(values: np.ndarray) -> np.ndarray:
    """Map values in 0..1 to RGB in 0..1 with the classic "jet" colour map.

    0 is dark blue, 0.5 green-yellow, 1 dark red.
    """
    channels = [np.clip(1.5 - np.abs(4.0 * values - centre), 0.0, 1.0) for centre in (3.0, 2.0, 1.0)]
    return np.stack(channels, axis=-1)


def _apply(layers: list, x):
    """Run ``x`` through ``layers`` in order, in inference mode."""
    for layer in layers:
        x = layer(x, training=False)
    return x


def _class_index(class_index: int | None, probs: np.ndarray) -> int:
    if class_index is None:
        return int(np.argmax(probs))
    whole = isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool)
    if not whole or not 0 <= class_index < len(probs):
        raise TLToolsError(f"class_index={class_index!r} is out of range; use 0..{len(probs) - 1}")
    return int(class_index)


def _class_scores(last: keras.layers.Layer, hidden):
    """Return the class scores Grad-CAM differentiates: the logits before a final softmax.

    A softmax close to 1 has a vanishing gradient, so the scores are taken
    before it when the last layer is a ``Dense`` with softmax activation (as
    ``predictions`` is); otherwise the layer's output is used.
    """
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
        logits = tf.matmul(hidden, last.kernel)
        return logits + last.bias if last.use_bias else logits
    return last(hidden, training=False)


def _cam(features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Weigh channels by their mean gradient, sum, keep the positive part and scale to 0..1."""
    weights = gradients.mean(axis=(0, 1))
    cam = np.maximum(features @ weights, 0.0)
    peak = cam.max()
    return (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32)
