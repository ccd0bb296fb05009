"""Gradual unfreezing with discriminative learning rates: phase 2 as ULMFiT (Howard & Ruder, 2018) does it.

With ``gradual_unfreeze`` on, phase 2 does not unfreeze every block of its
``unfreeze`` setting at once. It goes in stages, one block more each stage,
from the top of the base down to the setting's first block
(:func:`gradual_stages`); in every stage each block learns at a lower rate the
deeper it sits, the head and the top block at the phase's learning rate and
each block below at :data:`BLOCK_RATE_FACTOR` times less
(:func:`block_rate_scales`), and the phase's learning rate decays along a
half cosine over its epochs (:class:`CosineDecay`). BatchNorm layers stay
frozen (inference mode, moving statistics unchanged), as in any phase 2.

Keras 3 has no per-layer learning rate: :func:`make_layer_rate_optimizer`
returns one of the trainer's optimizers whose update of each variable uses the
learning rate times that variable's scale (Adam is invariant to the scale of
the gradient, so scaling gradients would not do it).
"""

import functools
import math

import keras

from tltools.backbones.registry import get_backbone
from tltools.errors import TLToolsError
from tltools.model.freezing import base_of
from tltools.training.config import LAYERS_PER_BLOCK
from tltools.training.optimizers import make_optimizer

# Each block learns this many times slower than the block above it (ULMFiT's 2.6).
BLOCK_RATE_FACTOR = 2.6


def block_of_layers(model: keras.Model) -> dict[int, int]:
    """Return, for each weighted base layer (by ``id``), its block's depth from the top: 0 for the top block.

    Blocks are the registry's named blocks; a backbone without them is taken in groups of
    :data:`tltools.training.config.LAYERS_PER_BLOCK` weighted layers from the output. Layers outside
    every named block (a stem, a final convolution after the last block) count with the block before them.
    """
    base = base_of(model)
    spec = get_backbone(model.name)
    weighted = [layer for layer in base.layers if layer.weights]
    if not spec.blocks:
        return {id(layer): (len(weighted) - 1 - position) // LAYERS_PER_BLOCK for position, layer in enumerate(weighted)}
    order = {name: index for index, name in enumerate(spec.blocks)}
    depth, current = {}, 0
    for layer in base.layers:
        block = spec.block_of(layer.name)
        if block in order:
            current = order[block]
        if layer.weights:
            depth[id(layer)] = len(spec.blocks) - 1 - current
    return depth


def gradual_stages(model: keras.Model, unfreeze: str, epochs: int) -> list[tuple[str, int]]:
    """Return the stages of a gradual phase 2: ``(unfreeze setting, epochs)``, one block more each stage.

    Args:
        model: A model from :func:`tltools.model.build_model`.
        unfreeze: The phase's resolved unfreeze setting (``block:N`` or a number of top layers);
            the last stage unfreezes exactly that.
        epochs: The phase's epochs: every stage but the last gets ``epochs // (stages + 1)`` (at least one),
            the last stage the rest, so the whole phase trains ``epochs`` epochs at most.

    Returns:
        The stages, top block first; one stage (the setting itself) when it spans a single block or
        is ``all``/``none``.

    Raises:
        TLToolsError: ``unfreeze`` is not a setting this backbone has.
    """
    spec = get_backbone(model.name)
    if unfreeze.startswith("block:") and spec.blocks:
        first = unfreeze.removeprefix("block:")
        if first not in spec.blocks:
            raise TLToolsError(f"unfreeze={unfreeze!r}: {model.name} has no block {first}; "
                               f"use block:N with N one of {', '.join(spec.blocks)}")
        settings = [f"block:{name}" for name in reversed(spec.blocks[spec.blocks.index(first):])]
    elif unfreeze.isdigit() and int(unfreeze) > 0:
        count = int(unfreeze)
        settings = [str(min(top, count)) for top in range(LAYERS_PER_BLOCK, count + LAYERS_PER_BLOCK,
                                                          LAYERS_PER_BLOCK)]
    else:
        settings = [unfreeze]
    if len(settings) == 1 or epochs < 2:
        return [(unfreeze, epochs)]
    if epochs <= len(settings):  # fewer epochs than blocks: one epoch for each of the top blocks, then all
        return [*((setting, 1) for setting in settings[:epochs - 1]), (unfreeze, 1)]
    early = max(1, epochs // (len(settings) + 1))
    return [*((setting, early) for setting in settings[:-1]), (unfreeze, epochs - early * (len(settings) - 1))]


def block_rate_scales(model: keras.Model, *, factor: float = BLOCK_RATE_FACTOR) -> dict[int, float]:
    """Return each trainable variable's learning-rate scale (by ``id``): ``factor ** -depth`` in the base.

    Depth is counted from the top trainable block (0) down (:func:`block_of_layers`), so the top block
    and the head (scale 1, not listed) learn at the phase's rate and each deeper block ``factor`` times slower.
    """
    depth = block_of_layers(model)
    trainable = [layer for layer in base_of(model).layers if layer.trainable_weights]
    top = min((depth[id(layer)] for layer in trainable), default=0)
    return {id(variable): factor ** -(depth[id(layer)] - top)
            for layer in trainable for variable in layer.trainable_weights}


class _LayerRates:
    """Mixin for a Keras optimizer: each variable's step uses the learning rate times its own scale."""

    def _set_scales(self, scales: dict[int, float]) -> None:
        self._scales_by_id = dict(scales)
        self._rate_scales = None

    def build(self, variables):
        super().build(variables)
        self._rate_scales = [float(self._scales_by_id.get(id(variable), 1.0)) for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._rate_scales[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)


@functools.cache
def _with_layer_rates(cls: type) -> type:
    # Named and placed as the optimizer it extends, so a model saved while compiled with it (a checkpoint
    # during phase 2 on images) names that plain Keras optimizer and loads anywhere; the factors only
    # matter while training.
    return type(cls.__name__, (_LayerRates, cls), {"__module__": cls.__module__, "__qualname__": cls.__qualname__})


def make_layer_rate_optimizer(name: str, learning_rate: float, scales: dict[int, float], **options):
    """Return the optimizer :func:`tltools.training.optimizers.make_optimizer` makes, with per-variable rates.

    Args:
        name: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``.
        learning_rate: The rate of variables without a scale (the head); callbacks may change it as usual.
        scales: ``id(variable)`` → factor on the learning rate for that variable (see :func:`block_rate_scales`).
        options: ``momentum``, ``weight_decay`` as ``make_optimizer`` takes them.

    Raises:
        TLToolsError: ``name`` is unknown.
    """
    plain = make_optimizer(name, learning_rate, **options)
    optimizer = _with_layer_rates(type(plain)).from_config(plain.get_config())
    optimizer._set_scales(scales)
    return optimizer


class CosineDecay(keras.callbacks.Callback):
    """Sets the optimizer's learning rate along a half cosine from ``start`` (first epoch) towards 0.

    Args:
        start: The learning rate of the phase's first epoch.
        first_epoch: The run's epoch number at which the phase starts.
        epochs: The phase's epochs; the last one trains at ``start * (1 + cos(pi * (epochs-1)/epochs)) / 2``.
    """

    def __init__(self, start: float, first_epoch: int, epochs: int):
        super().__init__()
        self.start, self.first_epoch, self.epochs = start, first_epoch, max(epochs, 1)

    def rate(self, epoch: int) -> float:
        """Return the learning rate of the run's epoch ``epoch``."""
        progress = min(max(epoch - self.first_epoch, 0), self.epochs) / self.epochs
        return self.start * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.rate(epoch)
