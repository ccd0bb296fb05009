"""AdaBN: re-estimate a model's BatchNorm statistics on images of the new domain, weights untouched.

Every BatchNorm layer of the base gets the mean and variance its inputs have on
the target images (Li et al., "Revisiting Batch Normalization For Practical
Domain Adaptation"). The base runs in training mode over the target images,
so each layer normalises with the target batch's statistics, as the layers
below it will once adapted; each layer's moving statistics become the running
average of the per-batch statistics (momentum ``k/(k+1)`` at batch ``k``).
Only ``moving_mean`` and ``moving_variance`` change; kernels, biases, gamma
and beta stay as they were.
"""

import keras
import numpy as np

from tltools.errors import TLToolsError
from tltools.model.builder import BASE_NAME


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Return every BatchNorm layer inside ``model``, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batchnorm_layers(layer))
    return found


def adapt_batchnorm(model: keras.Model, images: np.ndarray, *, batch_size: int = 32) -> int:
    """Set the BatchNorm statistics of ``model``'s base to those of ``images``; return how many layers changed.

    Args:
        model: A transfer model from :func:`tltools.model.build_model` (changed in place).
        images: ``uint8`` or float pixels 0..255 (N, size, size, 3) of the target domain; N ≥ 2.
        batch_size: Images per pass (at least 2 are used: a batch of one has no variance).

    Raises:
        TLToolsError: Fewer than 2 images, or a model without a ``base`` or any BatchNorm layer.
    """
    if len(images) < 2:
        raise TLToolsError(f"AdaBN needs at least 2 target images to estimate statistics; got {len(images)}")
    try:
        base = model.get_layer(BASE_NAME)
    except ValueError:
        raise TLToolsError(f"model {model.name} has no '{BASE_NAME}' backbone; adapt a model trained by tltools") from None
    norms = batchnorm_layers(base)
    if not norms:
        raise TLToolsError(f"the backbone of {model.name} has no BatchNorm layers; AdaBN does not apply, use self-training")
    before = _preprocessing(model)
    saved = {id(layer): (layer.trainable, layer.momentum) for layer in norms}
    base_trainable = base.trainable
    starts = list(range(0, len(images), batch_size))
    if len(images) - starts[-1] < 2 and len(starts) > 1:
        starts.pop()  # fold a last batch of one image into the one before
    try:
        base.trainable = True
        for layer in norms:
            layer.trainable = True
        for index, start in enumerate(starts):
            end = starts[index + 1] if index + 1 < len(starts) else len(images)
            for layer in norms:
                layer.momentum = index / (index + 1)  # 0 for the first batch: its statistics replace the source's
            base(before(np.asarray(images[start:end], dtype=np.float32)), training=True)
    finally:
        base.trainable = base_trainable
        for layer in norms:
            layer.trainable, layer.momentum = saved[id(layer)]
    return len(norms)


def _preprocessing(model: keras.Model):
    """Return ``pixels -> the base's input``: the model's layers between its input and the base."""
    layers = []
    for layer in model.layers:
        if layer.name == BASE_NAME:
            break
        if not isinstance(layer, keras.layers.InputLayer):
            layers.append(layer)

    def apply(pixels):
        x = pixels
        for layer in layers:
            x = layer(x)
        return x

    return apply
