"""The backbone registry: one :class:`BackboneSpec` per name, and one way to build it.

Entries are registered with :func:`register` (the built-in ones in
:mod:`tltools.backbones.keras_apps`); :func:`create_backbone` is the single
entry point that builds a backbone by name with ImageNet, random or
file weights, like ``timm.create_model``.
"""

import dataclasses
import re
from collections.abc import Callable

import keras

from tltools.backbones import weights as weights_source
from tltools.errors import TLToolsError

_REGISTRY: dict[str, "BackboneSpec"] = {}


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What tltools knows about one backbone.

    Attributes:
        name: Registry name, e.g. ``"efficientnet_lite0"``.
        constructor: ``constructor(*, input_shape, include_top, weights)``
            returning a ``keras.Model`` that expects preprocessed input;
            ``weights`` is ``"imagenet"`` or None.
        default_size: Input height = width the ImageNet weights were trained at.
        preprocessing: The rule, one of
            :data:`tltools.backbones.preprocessing.RULES`, that turns RGB
            0..255 into what the backbone expects.
        feature_size: Channels of the headless output (the pooled feature).
        params: Parameters of the headless backbone.
        top1: ImageNet top-1 accuracy in percent as the Keras applications
            table publishes it, or None where Keras does not list it.
        offline: True when the ImageNet weights load without a download.
        block_pattern: Regular expression whose group 1 is the block a layer
            belongs to (``^block(\\d+)`` matches ``block6a_expand_conv``), or
            None for backbones without named blocks.
        blocks: The blocks ``block_pattern`` finds, in layer order.
        min_size: Smallest input height = width the backbone accepts.
    """

    name: str
    constructor: Callable[..., keras.Model]
    default_size: int
    preprocessing: str
    feature_size: int
    params: int
    top1: float | None
    offline: bool
    block_pattern: str | None
    blocks: tuple[str, ...]
    min_size: int = 32

    def block_of(self, layer_name: str) -> str | None:
        """Return the block a layer belongs to, or None when it is outside every block."""
        if self.block_pattern is None:
            return None
        match = re.search(self.block_pattern, layer_name)
        return match.group(1) if match else None


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry and return it.

    Raises:
        ValueError: If a backbone of that name is already registered.
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> list[BackboneSpec]:
    """Return every registered backbone, in registration order (default first)."""
    return list(_REGISTRY.values())


def get_backbone(name: str) -> BackboneSpec:
    """Return the spec registered under ``name``.

    Raises:
        TLToolsError: If no backbone has that name; the message lists the valid ones.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise TLToolsError(f"unknown backbone {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def create_backbone(
    name: str, weights="imagenet", input_size: int | None = None, include_top: bool = False
) -> keras.Model:
    """Build a backbone by name.

    Args:
        name: A registered backbone name (see :func:`list_backbones`).
        weights: ``"imagenet"``, ``"none"`` (random initialisation) or the
            path of a ``.weights.h5`` file saved with ``base.save_weights``.
        input_size: Input height = width in pixels; defaults to the spec's
            ``default_size``.
        include_top: Keep the 1000-class ImageNet classifier (softmax output)
            instead of ending at the 4-D feature map.

    Returns:
        A ``keras.Model`` expecting input already normalised by the spec's
        preprocessing rule (see :func:`tltools.backbones.preprocessing_layer`).

    Raises:
        TLToolsError: For an unknown name, a bad ``input_size`` or ``weights``,
            a failed ImageNet download, or a weights file that does not fit.
    """
    spec = get_backbone(name)
    size = _check_size(spec, input_size)
    source = weights_source.parse_weights(weights)
    keras_weights = weights_source.IMAGENET if source == weights_source.IMAGENET else None
    with weights_source.imagenet_download_errors(spec.name):
        try:
            model = spec.constructor(input_shape=(size, size, 3), include_top=include_top, weights=keras_weights)
        except ValueError as error:
            raise TLToolsError(
                f"cannot build {spec.name} with input_size={size}, include_top={include_top}, "
                f"weights={weights!r}: {error}"
            ) from None
    if source not in (None, weights_source.IMAGENET):
        weights_source.load_weights_file(model, source, spec.name)
    return model if include_top else _without_stochastic_layers(model)


# Layers that behave randomly in training mode.
_STOCHASTIC_LAYERS = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
)


def _without_stochastic_layers(model: keras.Model) -> keras.Model:
    """Return ``model`` with dropout-like layers replaced by ``Identity`` (same names, same weights).

    Keras 3's ``fit`` calls every layer with ``training=True``, overriding the
    ``base(x, training=False)`` of the transfer-learning recipe. Frozen
    BatchNorm layers still run in inference mode, but the stochastic-depth
    dropout inside EfficientNet B/V2 bases would stay active even in a frozen
    base. Without it the base computes the same features in training and in
    inference, as the recipe intends (and as cached features assume).
    """
    if not any(isinstance(layer, _STOCHASTIC_LAYERS) for layer in model.layers):
        return model

    def clone(layer):
        if isinstance(layer, _STOCHASTIC_LAYERS):
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    deterministic = keras.models.clone_model(model, clone_function=clone)
    deterministic.set_weights(model.get_weights())
    return deterministic


def _check_size(spec: BackboneSpec, input_size) -> int:
    """Return the input size to build at, refusing sizes the backbone cannot take."""
    if input_size is None:
        return spec.default_size
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < spec.min_size:
        raise TLToolsError(
            f"input_size={input_size!r} is not usable for {spec.name}; use an integer of at least "
            f"{spec.min_size} (default {spec.default_size})"
        )
    return input_size
