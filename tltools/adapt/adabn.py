"""AdaBN: re-estimate a model's BatchNorm statistics on images of the new domain, weights untouched.

Plain AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain
Adaptation") gives every BatchNorm layer of the base the mean and variance its
inputs have on the target images. The base runs in training mode over them,
so each layer normalises with the target batch's statistics, as the layers
below it will once adapted; each layer's moving statistics become the running
average of the per-batch statistics (momentum ``k/(k+1)`` at batch ``k``).

A transfer-learned model's frozen base, though, keeps *ImageNet's* statistics,
and its head learned the features those produce on the source images. Plain
AdaBN would standardise the target features where the head expects ImageNet-
normalised source features (on flowers12 it drops accuracy even on the source
domain's own test images, 0.97 → 0.62). So when source images are given, each
layer's statistics are set *relative to the source*: with (μ_s, σ_s) and
(μ_t, σ_t) measured the same way on source and target images and (μ, σ) the
layer's own, the new statistics are σ' = σ·σ_t/σ_s and μ' = μ_t − σ_t·(μ_s − μ)/σ_s,
which map target activations to where the source's were (and leave the layer
unchanged when target and source agree).

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


def adapt_batchnorm(model: keras.Model, images: np.ndarray, *, source_images: np.ndarray | None = None,
                    batch_size: int = 32) -> int:
    """Set the BatchNorm statistics of ``model``'s base for ``images``; return how many layers changed.

    Args:
        model: A transfer model from :func:`tltools.model.build_model` (changed in place).
        images: ``uint8`` or float pixels 0..255 (N, size, size, 3) of the target domain; N ≥ 2.
        source_images: Images of the source domain (e.g. the run's training images): the statistics
            are then set relative to the source (see the module docstring); None for plain AdaBN.
        batch_size: Images per pass (at least 2 are used: a batch of one has no variance).

    Raises:
        TLToolsError: Fewer than 2 images, or a model without a ``base`` or any BatchNorm layer.
    """
    for name, array in (("target", images), ("source", source_images)):
        if array is not None and len(array) < 2:
            raise TLToolsError(f"AdaBN needs at least 2 {name} images to estimate statistics; got {len(array)}")
    try:
        base = model.get_layer(BASE_NAME)
    except ValueError:
        raise TLToolsError(f"model {model.name} has no '{BASE_NAME}' backbone; adapt a model trained by tltools") from None
    norms = batchnorm_layers(base)
    if not norms:
        raise TLToolsError(f"the backbone of {model.name} has no BatchNorm layers; AdaBN does not apply, use self-training")
    original = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in norms]
    target = _measure(model, base, norms, images, batch_size)
    if source_images is None:
        final = target
    else:
        source = _measure(model, base, norms, source_images, batch_size)
        final = []
        for layer, (mean, variance), (mean_t, var_t), (mean_s, var_s) in zip(norms, original, target, source):
            eps = layer.epsilon
            sigma, sigma_t, sigma_s = (np.sqrt(v + eps) for v in (variance, var_t, var_s))
            new_sigma = sigma * sigma_t / sigma_s
            final.append((mean_t - sigma_t * (mean_s - mean) / sigma_s, np.maximum(new_sigma ** 2 - eps, 0.0)))
    for layer, (mean, variance) in zip(norms, final):
        layer.moving_mean.assign(np.asarray(mean, np.float32))
        layer.moving_variance.assign(np.asarray(variance, np.float32))
    return len(norms)


def _measure(model, base, norms, images, batch_size) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return each BatchNorm layer's input mean and variance on ``images``, the base in training mode.

    The layers' own statistics are left as they were.
    """
    before = _preprocessing(model)
    saved = {id(layer): (layer.trainable, layer.momentum) for layer in norms}
    stats = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in norms]
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
                layer.momentum = index / (index + 1)  # 0 for the first batch: its statistics replace the old ones
            base(before(np.asarray(images[start:end], dtype=np.float32)), training=True)
        return [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in norms]
    finally:
        base.trainable = base_trainable
        for layer, (mean, variance) in zip(norms, stats):
            layer.trainable, layer.momentum = saved[id(layer)]
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)


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
