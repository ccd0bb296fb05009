"""Cut a transfer model in two where its frozen part ends, to train the rest on cached activations.

A model from :func:`tltools.model.build_model` is a chain: pixels →
preprocessing → ``base`` → ``pooling`` → head. While part of it is frozen
(BatchNorm in inference mode, no dropout inside the base), that part computes
the same activations for an image every epoch, so they can be computed once
and cached (:mod:`tltools.training.feature_cache`):

- :func:`split_at_pooling` (phase 1, whole base frozen): the *extractor* is
  everything up to and including ``pooling``; the *head* is the layers after
  it applied to a new ``keras.Input`` of the pooled shape. For ``flatten``
  pooling the cached "features" are the flattened feature maps.
- :func:`split_for_fine_tuning` (phase 2, top of the base unfrozen): the cut is
  a tensor inside the base, before its first trainable layer, through which
  every path runs (a block boundary, since residual connections cannot be
  cut); the trainable part is the rest of the base, the pooling and the head.

The trainable part reuses the *same layer objects* as the full model, so
training it trains the full model: saving, evaluation and export keep seeing
one ordinary Keras model.
"""

import dataclasses
import math

import keras

from tltools.errors import TLToolsError
from tltools.model.builder import BASE_NAME

POOLING = "pooling"
# Among the last this-many possible cuts before the first trainable layer, the one with the fewest
# values per image is chosen: a block output rather than the 6x wider expansion inside the next block.
CUT_WINDOW = 8


class NotSplittable(TLToolsError):
    """The model is not the chain of layers :func:`tltools.model.build_model` makes."""


@dataclasses.dataclass(eq=False)
class SplitModel:
    """A transfer model cut at one tensor.

    Attributes:
        cut: ``"pooling"``, or the name of the base layer whose output is the cut.
        extractor: Pixels 0..255 → activations at the cut (the frozen part).
        head: Activations at the cut → class probabilities (shares its layers with the full model).
        feature_shape: Shape of one image's activations at the cut.
        shared_extractor: For cuts inside the base, pixels → ``[activations, pooled features]``
            in one pass (so both caches fill from one run of the base); None for ``"pooling"``.
    """

    cut: str
    extractor: keras.Model
    head: keras.Model
    feature_shape: tuple[int, ...]
    shared_extractor: keras.Model | None = None

    @property
    def values_per_image(self) -> int:
        """Numbers cached per image."""
        return math.prod(self.feature_shape)


def split_at_pooling(model: keras.Model) -> SplitModel:
    """Cut a transfer model after its ``pooling`` layer.

    Args:
        model: A model from :func:`tltools.model.build_model` (or loaded from one).

    Returns:
        The split; ``extractor`` ends with the pooled features, ``head`` is the rest.

    Raises:
        NotSplittable: The model is not the chain ``build_model`` makes.
    """
    chain = _outer_chain(model)
    names = [layer.name for layer in chain]
    if POOLING not in names:
        raise NotSplittable(f"model {model.name!r} has no {POOLING!r} layer; build it with tltools.model.build_model")
    position = names.index(POOLING)
    features = _output(chain[position])
    extractor = keras.Model(model.inputs[0], features, name=f"{model.name}_features")
    inputs = keras.Input(shape=tuple(features.shape[1:]), name="features")
    outputs = inputs
    for layer in chain[position + 1:]:
        outputs = layer(outputs)
    head = keras.Model(inputs, outputs, name=f"{model.name}_head")
    return SplitModel(POOLING, extractor, head, tuple(features.shape[1:]))


def split_for_fine_tuning(model: keras.Model) -> SplitModel | None:
    """Cut a transfer model inside its base, before the first trainable base layer.

    Call it after the unfreeze setting is applied. A base with no trainable
    layer is cut at ``pooling``, like phase 1.

    Args:
        model: A model from :func:`tltools.model.build_model` with part of its base unfrozen.

    Returns:
        The split, or None when no tensor before the first trainable layer
        carries every path (e.g. ``unfreeze="all"``): nothing frozen to cache.

    Raises:
        NotSplittable: The model is not the chain ``build_model`` makes.
    """
    chain = _outer_chain(model)
    names = [layer.name for layer in chain]
    if BASE_NAME not in names or POOLING not in names:
        raise NotSplittable(f"model {model.name!r} has no {BASE_NAME!r} and {POOLING!r} layers; "
                           "build it with tltools.model.build_model")
    base = chain[names.index(BASE_NAME)]
    cuts, any_trainable = _cuts_before_trainable(base)
    if not any_trainable:
        return split_at_pooling(model)
    window = cuts[-CUT_WINDOW:]
    smallest = min(math.prod(tensor.shape[1:]) for _, tensor in window)
    name, cut = [(name, tensor) for name, tensor in window if math.prod(tensor.shape[1:]) == smallest][-1]
    if cut is base.inputs[0]:
        return None
    base_input = base._inbound_nodes[0].input_tensors[0]  # noqa: SLF001 - the tensor the full model feeds its base
    prefix = keras.Model(base.inputs[0], cut, name=f"{BASE_NAME}_frozen_part")
    activations = prefix(base_input)
    extractor = keras.Model(model.inputs[0], activations, name=f"{model.name}_activations")
    tail = keras.Model(cut, base.outputs[0], name=f"{BASE_NAME}_tail")
    pooling = chain[names.index(POOLING)]
    shared_extractor = keras.Model(model.inputs[0], [activations, pooling(tail(activations))],
                                   name=f"{model.name}_activations_and_features")
    inputs = keras.Input(shape=tuple(cut.shape[1:]), name="activations")
    outputs = pooling(tail(inputs))
    for layer in chain[names.index(POOLING) + 1:]:
        outputs = layer(outputs)
    head = keras.Model(inputs, outputs, name=f"{model.name}_tail")
    return SplitModel(name, extractor, head, tuple(cut.shape[1:]), shared_extractor)


def _outer_chain(model: keras.Model) -> list[keras.layers.Layer]:
    """Return the model's layers after its input, checking each feeds only the next.

    Raises:
        NotSplittable: The model is not a single chain of layers from one input.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotSplittable(f"model {model.name!r} must have one input and one output to be split")
    previous = model.inputs[0]
    chain = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        node = layer._inbound_nodes[0]  # noqa: SLF001 - node 0 is the model's own call
        if len(node.input_tensors) != 1 or node.input_tensors[0] is not previous:
            raise NotSplittable(f"model {model.name!r} is not a chain of layers (at {layer.name!r}); "
                               "build it with tltools.model.build_model")
        previous = node.output_tensors[0]
        chain.append(layer)
    if previous is not model.outputs[0]:
        raise NotSplittable(f"model {model.name!r} is not a chain of layers ending in its output")
    return chain


def _output(layer: keras.layers.Layer):
    """Return the tensor ``layer`` produced in the model it was built in (its first call)."""
    return layer._inbound_nodes[0].output_tensors[0]  # noqa: SLF001


def _cuts_before_trainable(base: keras.Model) -> tuple[list[tuple[str, object]], bool]:
    """Return the tensors of ``base`` that every path crosses, up to its first trainable layer.

    The base's nodes are visited in topological order while tracking the
    tensors still needed later ("live"); wherever exactly one is live, the
    graph can be cut there. Returns ``([(layer name, tensor), ...], whether
    a trainable layer was found)``; the first entry is the base's input.
    """
    nodes = [node for depth in sorted(base._nodes_by_depth, reverse=True)  # noqa: SLF001
             for node in base._nodes_by_depth[depth]]  # noqa: SLF001
    uses: dict[int, int] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    for tensor in base.outputs:
        uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    live: dict[int, object] = {}
    cuts = []
    for node in nodes:
        operation = node.operation
        if getattr(operation, "trainable_weights", None):
            return cuts, True
        for tensor in node.input_tensors:
            uses[id(tensor)] -= 1
            if uses[id(tensor)] == 0:
                live.pop(id(tensor), None)
        for tensor in node.output_tensors:
            if uses.get(id(tensor), 0) > 0:
                live[id(tensor)] = tensor
        if len(live) == 1:
            tensor = next(iter(live.values()))
            cuts.append((tensor._keras_history.operation.name, tensor))  # noqa: SLF001
    return cuts, False
