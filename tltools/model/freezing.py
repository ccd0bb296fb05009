"""Which backbone layers train: none, the top N, everything from a block on, or all.

Only layers of the nested ``base`` model change; the preprocessing layer
stays frozen and the head stays trainable. "Top N" counts the base layers
that have weights, from the output backwards, BatchNorm layers included.

BatchNormalization layers stay frozen unless ``train_batchnorm=True``. A
frozen BatchNorm layer runs in inference mode, so its moving statistics never
change, as the Keras guide asks. With ``train_batchnorm=True`` Keras 3 trains
their scale and offset *and* normalises with batch statistics during ``fit``,
updating the moving statistics (``training=False`` on the nested call does not
prevent it, see :mod:`tltools.model.builder`): use it only with large batches.

A compiled model is recompiled after every change, with a fresh optimizer of
the same configuration and the same loss and metrics, because ``compile``
fixes the set of weights that train.
"""

import math

import keras
import pandas as pd

from tltools.backbones import list_backbones
from tltools.backbones.registry import BackboneSpec
from tltools.errors import TLToolsError
from tltools.model.builder import BASE_NAME


def base_of(model: keras.Model) -> keras.Model:
    """Return the nested backbone of a model made by ``tltools.model.build_model``.

    Raises:
        TLToolsError: If the model has no layer named ``base``.
    """
    try:
        return model.get_layer(BASE_NAME)
    except ValueError:
        raise TLToolsError(
            f"model {model.name!r} has no '{BASE_NAME}' layer; build it with tltools.model.build_model"
        ) from None


def spec_of(model: keras.Model) -> BackboneSpec:
    """Return the registry spec of the backbone a transfer model was built on (its name).

    Raises:
        TLToolsError: If the model's name is not a registered backbone.
    """
    names = {spec.name: spec for spec in list_backbones()}
    if model.name not in names:
        raise TLToolsError(
            f"model {model.name!r} is not named after a backbone, so its blocks are unknown; "
            "build it with tltools.model.build_model"
        )
    return names[model.name]


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Return the base layers that have weights, input to output; their count is the largest N."""
    return [layer for layer in base_of(model).layers if layer.weights]


def freeze_base(model: keras.Model) -> None:
    """Freeze every base layer (the head stays trainable) and recompile if compiled."""
    _unfreeze_from(model, None, train_batchnorm=False)


def unfreeze_all(model: keras.Model, *, train_batchnorm: bool = False) -> None:
    """Make every base layer trainable (BatchNorm only with ``train_batchnorm``) and recompile."""
    _unfreeze_from(model, 0, train_batchnorm=train_batchnorm)


def unfreeze_top(model: keras.Model, n: int, *, train_batchnorm: bool = False) -> None:
    """Make the top ``n`` weighted base layers trainable, freeze the rest, and recompile.

    Args:
        model: A model from ``tltools.model.build_model``.
        n: How many of the base layers that have weights to unfreeze, counted
            from the output; 0 freezes the whole base.
        train_batchnorm: Also train the BatchNorm layers among them.

    Raises:
        TLToolsError: If ``n`` is not a whole number between 0 and the number
            of weighted base layers.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise TLToolsError(
            f"cannot unfreeze the top {n!r} layers: {model.name} has {len(weighted_layers(model))} base layers "
            f"with weights; use a whole number from 0 to {len(weighted_layers(model))}"
        )
    _unfreeze_from(model, _first_unfrozen(model, str(n)), train_batchnorm=train_batchnorm)


def unfreeze_from_block(model: keras.Model, block, *, train_batchnorm: bool = False) -> None:
    """Make the base trainable from the first layer of ``block`` to the output, and recompile.

    Args:
        model: A model from ``tltools.model.build_model``.
        block: A block name from :func:`block_names`, e.g. ``"6"`` or ``6``.
        train_batchnorm: Also train the BatchNorm layers from there on.

    Raises:
        TLToolsError: If the backbone has no named blocks or no such block.
    """
    _unfreeze_from(model, _first_unfrozen(model, f"block:{block}"), train_batchnorm=train_batchnorm)


def apply_unfreeze(model: keras.Model, setting, *, train_batchnorm: bool = False) -> None:
    """Apply an unfreeze setting as a config or CLI states it, and recompile.

    Args:
        model: A model from ``tltools.model.build_model``.
        setting: ``"all"``, a number of top weighted base layers (``30`` or
            ``"30"``), ``"block:N"`` (from block N on), or ``"none"`` / ``0``.
        train_batchnorm: Also train the BatchNorm layers that are unfrozen.

    Raises:
        TLToolsError: If the setting is not one of those forms or does not fit the backbone.
    """
    _unfreeze_from(model, _first_unfrozen(model, setting), train_batchnorm=train_batchnorm)


def block_names(model_or_spec: keras.Model | BackboneSpec) -> list[str]:
    """Return the backbone's block names in layer order (empty if it has none).

    Args:
        model_or_spec: A model from ``tltools.model.build_model`` or a
            :class:`BackboneSpec`.
    """
    if isinstance(model_or_spec, BackboneSpec):
        return list(model_or_spec.blocks)
    spec = spec_of(model_or_spec)
    names = []
    for layer in base_of(model_or_spec).layers:
        block = spec.block_of(layer.name)
        if block is not None and block not in names:
            names.append(block)
    return names


def layer_table(model: keras.Model) -> pd.DataFrame:
    """Describe every base layer, for showing what a freezing choice means.

    Returns:
        One row per base layer with columns ``index`` (position in the base),
        ``name``, ``type`` (class name), ``block`` (or None), ``params``
        (all its weights), ``trainable`` (True when some of its weights
        train) and ``top_n`` (the smallest N for which :func:`unfreeze_top`
        unfreezes it; missing for layers without weights).
    """
    spec = spec_of(model)
    weighted = weighted_layers(model)
    rank = {id(layer): len(weighted) - position for position, layer in enumerate(weighted)}
    rows = [
        {
            "index": index,
            "name": layer.name,
            "type": type(layer).__name__,
            "block": spec.block_of(layer.name),
            "params": layer.count_params() if layer.weights else 0,
            "trainable": bool(layer.trainable_weights),
            "top_n": rank.get(id(layer)),
        }
        for index, layer in enumerate(base_of(model).layers)
    ]
    table = pd.DataFrame(rows)
    table["top_n"] = table["top_n"].astype("Int64")
    return table


def parameter_totals(model: keras.Model) -> dict[str, int]:
    """Return ``{"trainable": ..., "frozen": ...}`` parameter counts of the whole model.

    "frozen" counts every non-trainable weight, BatchNorm moving statistics
    included, as ``model.summary()`` does.
    """
    return {
        "trainable": sum(math.prod(w.shape) for w in model.trainable_weights),
        "frozen": sum(math.prod(w.shape) for w in model.non_trainable_weights),
    }


def _unfreeze_from(model: keras.Model, first: int | None, *, train_batchnorm: bool) -> None:
    """Train base layers from index ``first`` on (none if None), then recompile."""
    base = base_of(model)
    if first is None:
        base.trainable = False
    else:
        base.trainable = True
        for index, layer in enumerate(base.layers):
            _set_trainable(layer, index >= first, train_batchnorm)
    if model.compiled:
        model.compile_from_config(model.get_compile_config())


def _set_trainable(layer: keras.layers.Layer, trainable: bool, train_batchnorm: bool) -> None:
    """Set a layer's (and its sublayers') trainability, keeping BatchNorm frozen unless asked."""
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = trainable and train_batchnorm
        return
    layer.trainable = trainable
    for sublayer in getattr(layer, "layers", ()):
        _set_trainable(sublayer, trainable, train_batchnorm)


def preview_unfreeze(
    model: keras.Model, setting, *, train_batchnorm: bool = False
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Show what :func:`apply_unfreeze` would do, without changing ``model``.

    Safe on a model shared between threads (e.g. one cached by a web app):
    nothing is written to the model, its layers or its variables.

    Args:
        model: A model from ``tltools.model.build_model``.
        setting: An unfreeze setting as :func:`apply_unfreeze` takes it.
        train_batchnorm: Also train the BatchNorm layers that are unfrozen.

    Returns:
        ``(table, totals)``: :func:`layer_table` with its ``trainable`` column
        as it would be after ``apply_unfreeze(model, setting, ...)``, and the
        :func:`parameter_totals` the whole model would then have.

    Raises:
        TLToolsError: If :func:`apply_unfreeze` would refuse the setting.
    """
    base = base_of(model)
    layer_flags: dict[int, bool] = {}
    variable_flags: dict[int, bool] = {}
    first = _first_unfrozen(model, setting)
    if first is None:
        _would_set(base, False, layer_flags, variable_flags)
    else:
        _would_set(base, True, layer_flags, variable_flags)
        for index, layer in enumerate(base.layers):
            _would_set_trainable(layer, index >= first, train_batchnorm, layer_flags, variable_flags)

    def trains(variable) -> bool:
        return variable_flags.get(id(variable), variable.trainable)

    table = layer_table(model)
    table["trainable"] = [
        layer_flags[id(layer)] and any(trains(weight) for weight in layer.weights) for layer in base.layers
    ]
    trainable = frozen = 0
    for weight in model.weights:
        if model.trainable and trains(weight):
            trainable += math.prod(weight.shape)
        else:
            frozen += math.prod(weight.shape)
    return table, {"trainable": trainable, "frozen": frozen}


def _first_unfrozen(model: keras.Model, setting) -> int | None:
    """Parse and check an unfreeze setting: the base index to train from (None: base frozen).

    Raises:
        TLToolsError: The setting is not ``all``/``none``/N/``block:N`` or does not fit the backbone.
    """
    text = str(setting).strip().lower()
    if text == "all":
        return 0
    if text in ("none", "0"):
        return None
    layers = base_of(model).layers
    if text.startswith("block:"):
        block = text.split(":", 1)[1]
        spec = spec_of(model)
        names = block_names(model)
        if block not in names:
            raise TLToolsError(
                f"{spec.name} has no block {block}; "
                + (f"choose one of {', '.join(names)}" if names else "it has no named blocks, use unfreeze_top")
            )
        return next(i for i, layer in enumerate(layers) if spec.block_of(layer.name) == block)
    if text.isdigit():
        n, weighted = int(text), weighted_layers(model)
        if n > len(weighted):
            raise TLToolsError(
                f"cannot unfreeze the top {n!r} layers: {model.name} has {len(weighted)} base layers with "
                f"weights; use a whole number from 0 to {len(weighted)}"
            )
        return None if n == 0 else layers.index(weighted[-n])
    raise TLToolsError(f"unfreeze={setting!r} is not understood; use all, a number of top layers, or block:N")


def _would_set(layer, trainable: bool, layer_flags: dict, variable_flags: dict) -> None:
    """Record what ``layer.trainable = trainable`` would set (Keras 3's setter, recursively)."""
    layer_flags[id(layer)] = trainable
    for variable in layer._trainable_variables:  # the weights the setter toggles; moving statistics stay frozen
        variable_flags[id(variable)] = trainable
    for sublayer in layer._layers:
        _would_set(sublayer, trainable, layer_flags, variable_flags)


def _would_set_trainable(
    layer, trainable: bool, train_batchnorm: bool, layer_flags: dict, variable_flags: dict
) -> None:
    """Record what :func:`_set_trainable` would set."""
    if isinstance(layer, keras.layers.BatchNormalization):
        _would_set(layer, trainable and train_batchnorm, layer_flags, variable_flags)
        return
    _would_set(layer, trainable, layer_flags, variable_flags)
    for sublayer in getattr(layer, "layers", ()):
        _would_set_trainable(sublayer, trainable, train_batchnorm, layer_flags, variable_flags)
