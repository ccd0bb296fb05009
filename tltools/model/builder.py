"""The transfer model, built the way the Keras transfer-learning guide says.

``Input`` of raw RGB 0..255 -> the backbone's own preprocessing layer ->
``base(x, training=False)`` (the headless backbone as a nested model named
``base``, frozen) -> pooling -> optional ``Dense`` + ``Dropout`` ->
``Dense(num_classes, softmax)`` named ``predictions``. The model is named
after its backbone, which is how :mod:`tltools.model.freezing` and
:mod:`tltools.model.io` find the spec.

In Keras 3, ``fit`` calls the model with ``training=True`` and that overrides
the ``training=False`` of the nested call (keras-team/keras#20285). What
keeps BatchNorm in inference mode is that a BatchNorm layer with
``trainable=False`` always uses its moving statistics, so
:mod:`tltools.model.freezing` keeps BatchNorm layers frozen when it unfreezes
the base, and :func:`tltools.backbones.create_backbone` replaces the
dropout layers inside a base (EfficientNet's stochastic depth) by identities.
The base thus computes the same features during ``fit`` as in prediction.
"""

from collections.abc import Sequence

import keras

from tltools.backbones import create_backbone, get_backbone, preprocessing_layer
from tltools.backbones.registry import BackboneSpec
from tltools.errors import TLToolsError
from tltools.model.io import check_class_names
from tltools.seeds import derive_seed

BASE_NAME = "base"
POOLINGS = ("avg", "max", "flatten")
# Models built ahead by prebuild(), by their build arguments; build_model hands each out once.
_PREBUILT: dict[tuple, keras.Model] = {}


def build_model(
    backbone: str,
    classes: int | Sequence[str],
    *,
    weights="imagenet",
    input_size: int | None = None,
    pooling: str = "avg",
    dense_units: int = 0,
    dropout: float = 0.2,
    seed: int | None = None,
) -> keras.Model:
    """Build an uncompiled transfer model with a frozen backbone.

    Args:
        backbone: A registered backbone name (``tltools.backbones.list_backbones``).
        classes: The number of classes, or the class names (only their count
            is used here; pass the names to ``tltools.model.io.save_model``).
        weights: ``"imagenet"``, ``"none"`` or a ``.weights.h5`` path for the base.
        input_size: Input height = width; defaults to the backbone's.
        pooling: ``"avg"``, ``"max"`` or ``"flatten"`` over the feature map.
        dense_units: Units of an extra ReLU ``Dense`` layer before the
            classifier; 0 for none.
        dropout: Dropout rate before the classifier, in [0, 1); 0 for none.
        seed: Seed of every random part of the model: the head's initial weights, its dropout
            and, with ``weights="none"``, the base's initial weights, each from its own stream
            (:func:`tltools.seeds.derive_seed`). The same seed builds the same model whatever other
            threads draw meanwhile; None leaves the seeds to Keras (Python's global ``random``).

    Returns:
        A ``keras.Model`` named after ``backbone`` that takes ``(size, size, 3)``
        float input in 0..255 and returns class probabilities.

    Raises:
        TLToolsError: For an unknown backbone, fewer than 2 classes, bad head
            arguments, or weights that cannot be loaded.
    """
    spec = get_backbone(backbone)
    num_classes = _num_classes(classes)
    _check_head(pooling, dense_units, dropout)
    key = _prebuild_key(spec.name, num_classes, weights, input_size, pooling, dense_units, dropout, seed)
    if key is not None and key in _PREBUILT:
        return _PREBUILT.pop(key)
    base = create_backbone(spec.name, weights=weights, input_size=input_size)
    if weights == "none" and seed is not None:
        base = _seeded_initialisation(base, seed)
    base.name = BASE_NAME
    base.trainable = False
    inputs, x = _preprocessed_input(spec, base.input_shape[1])
    x = base(x, training=False)
    x = _pooling_layer(pooling)(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense",
                               kernel_initializer=_glorot(seed, "head_dense"))(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout", seed=derive_seed(seed, "head_dropout"))(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions",
                                 kernel_initializer=_glorot(seed, "predictions"))(x)
    return keras.Model(inputs, outputs, name=spec.name)


def prebuild(backbone: str, classes: int, **options) -> bool:
    """Build the model ``build_model(backbone, classes, **options)`` would, now, and keep it for that call.

    A warm worker process (:mod:`tltools.worker`) does this with the last job's settings while it waits,
    so the next job with the same settings (a retrain at another learning rate) does not wait for the
    backbone to be built. Only seeded builds of ImageNet or random weights are kept: those come out the
    same whenever they are built; the model is handed out once, untouched.

    Returns:
        Whether a model was built and kept.

    Raises:
        TLToolsError: What :func:`build_model` raises.
    """
    key = _prebuild_key(get_backbone(backbone).name, classes, options.get("weights", "imagenet"),
                        options.get("input_size"), options.get("pooling", "avg"), options.get("dense_units", 0),
                        options.get("dropout", 0.2), options.get("seed"))
    if key is None:
        return False
    model = build_model(backbone, classes, **options)
    _PREBUILT.clear()
    _PREBUILT[key] = model
    return True


def _prebuild_key(*arguments) -> tuple | None:
    """The key a prebuilt model is kept under; None for builds that may differ each time (no seed, a weights file)."""
    backbone, classes, weights, input_size, pooling, dense_units, dropout, seed = arguments
    if seed is None or weights not in ("imagenet", "none"):
        return None
    return backbone, int(classes), weights, input_size, pooling, int(dense_units), float(dropout), int(seed)


def _glorot(seed: int | None, part: str) -> keras.initializers.Initializer:
    """Return Keras' default kernel initializer, seeded from the model's seed and the layer's name."""
    return keras.initializers.GlorotUniform(seed=derive_seed(seed, part))


def _seeded_initialisation(base: keras.Model, seed: int) -> keras.Model:
    """Return ``base`` rebuilt with every random initializer seeded from ``seed`` and the layer's position.

    Keras gives an unseeded initializer a seed from Python's global ``random`` when the layer is
    made, so a randomly initialised base would depend on what other threads drew meanwhile.
    """
    position = {id(layer): index for index, layer in enumerate(base.layers)}

    def seeded(layer):
        config = layer.get_config()
        for key, value in config.items():
            if key.endswith("_initializer") and isinstance(value, dict) and "seed" in value.get("config", {}):
                config[key] = {**value, "config": {**value["config"],
                                                   "seed": derive_seed(seed, "base", position[id(layer)], key)}}
        return layer.__class__.from_config(config)

    return keras.models.clone_model(base, clone_function=seeded)


def build_imagenet_classifier(backbone: str, *, input_size: int | None = None, weights="imagenet") -> keras.Model:
    """Build a backbone with its own 1000-class ImageNet head, fed raw RGB 0..255.

    This is what the base "sees" before fine-tuning: useful to check that its
    weights and preprocessing are right.

    Args:
        backbone: A registered backbone name.
        input_size: Input height = width; defaults to the backbone's. Keras
            applications only accept their default size with the ImageNet head.
        weights: ``"imagenet"``, ``"none"`` or a ``.weights.h5`` path.

    Returns:
        A ``keras.Model`` from ``(size, size, 3)`` pixels to 1000 probabilities.

    Raises:
        TLToolsError: For an unknown backbone, an unusable size, or weights
            that cannot be loaded.
    """
    spec = get_backbone(backbone)
    classifier = create_backbone(spec.name, weights=weights, input_size=input_size, include_top=True)
    inputs, x = _preprocessed_input(spec, classifier.input_shape[1])
    return keras.Model(inputs, classifier(x), name=f"{spec.name}_imagenet")


def _preprocessed_input(spec: BackboneSpec, size: int):
    """Return the raw-pixel ``Input`` and the tensor after the backbone's preprocessing."""
    inputs = keras.Input(shape=(size, size, 3), name="pixels")
    layer = preprocessing_layer(spec.preprocessing)
    return inputs, (layer(inputs) if layer is not None else inputs)


def _num_classes(classes) -> int:
    """Return the class count from a count or a list of names."""
    if isinstance(classes, bool):
        raise TLToolsError(f"classes={classes!r} must be a number of classes or a list of class names")
    if isinstance(classes, int):
        count = classes
    elif isinstance(classes, Sequence) and not isinstance(classes, str):
        count = len(check_class_names(classes))
    else:
        raise TLToolsError(f"classes={classes!r} must be a number of classes or a list of class names")
    if count < 2:
        raise TLToolsError(f"a classifier needs at least 2 classes; got {count}")
    return count


def _check_head(pooling: str, dense_units: int, dropout: float) -> None:
    """Refuse head arguments Keras would reject late or silently misuse."""
    if pooling not in POOLINGS:
        raise TLToolsError(f"pooling={pooling!r} is unknown; use one of {', '.join(POOLINGS)}")
    if isinstance(dense_units, bool) or not isinstance(dense_units, int) or dense_units < 0:
        raise TLToolsError(f"dense_units={dense_units!r} must be a whole number >= 0 (0 for no extra layer)")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise TLToolsError(f"dropout={dropout!r} must be in [0, 1)")


def _pooling_layer(pooling: str) -> keras.layers.Layer:
    """Return the layer that turns the 4-D feature map into one vector per image."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="pooling")
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="pooling")
    return keras.layers.Flatten(name="pooling")
