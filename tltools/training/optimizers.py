"""Optimizers by name, as :class:`tltools.training.config.TrainConfig` names them."""

import keras

from tltools.errors import TLToolsError


def make_optimizer(name: str, learning_rate: float, *, momentum: float = 0.9, weight_decay: float = 1e-4):
    """Return a fresh Keras optimizer.

    Args:
        name: ``adam``, ``adamw``, ``sgd`` (Nesterov-free, with ``momentum``) or ``rmsprop``.
        learning_rate: Initial learning rate.
        momentum: SGD momentum.
        weight_decay: AdamW decoupled weight decay.

    Raises:
        TLToolsError: ``name`` is unknown.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise TLToolsError(f"optimizer {name!r} is unknown; use adam, adamw, sgd or rmsprop")
