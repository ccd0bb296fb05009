"""Seeds a run owns: every random draw of a run comes from a seed derived from the run's own seed.

Keras draws an unseeded layer's or initializer's seed from Python's global
``random`` module, and ``keras.utils.set_random_seed`` reseeds that (and
NumPy's and TensorFlow's) for the whole process, so a run that relied on it
would change whenever another thread builds a model at the same time. Each
random part of a run (an augmentation layer, a kernel initializer, a dropout
layer, the shuffle) instead gets its own seed from :func:`derive_seed`: the
run's seed and the part's name, hashed, so that parts draw independent streams
and the same run seed always gives the same streams.
"""

import hashlib


def derive_seed(seed: int | None, *keys) -> int | None:
    """Return a seed in [0, 2**31) for the random part named by ``keys`` of a run seeded with ``seed``.

    Args:
        seed: The run's seed; None means "unseeded" and gives None (Keras then picks one).
        keys: What names the part, e.g. ``("augment", 0)`` or ``("head", "predictions")``.

    Returns:
        A seed that depends on ``seed`` and ``keys`` only, or None when ``seed`` is None.
    """
    if seed is None:
        return None
    digest = hashlib.sha256(repr((int(seed), *keys)).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1
