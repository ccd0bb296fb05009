"""Distributed feature extraction: the workers of a data-parallel run split the images between them.

Inside a data-parallel worker (:func:`sharing`), :func:`tltools.training.feature_cache.extract_features`
hands its work here: the chief creates each cache array once (a ``.npy`` of the full size, under a
temporary name beside its final one in the shared feature cache), every worker runs the frozen layers
over its own contiguous share of each split and writes those rows into it, and once all have
written (a collective: no worker goes on before the others) the chief renames the arrays into place
and writes their descriptions. Every worker then finds the whole array in the cache, and the
phase trains on it as on a cache hit. The feature cache must be on storage every worker sees
(``TLTOOLS_CACHE``), as the run folders must.
"""

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np

_current: "Share | None" = None


@dataclasses.dataclass(frozen=True)
class Share:
    """This worker's part of a data-parallel run.

    Attributes:
        rank: This worker's index (0: the chief).
        size: Number of workers.
        barrier: ``callable()`` that returns once every worker has called it.
    """

    rank: int
    size: int
    barrier: Callable[[], None]

    def span(self, count: int) -> tuple[int, int]:
        """Return this worker's contiguous ``[start, stop)`` of ``count`` items (shares differ by at most one)."""
        return count * self.rank // self.size, count * (self.rank + 1) // self.size


@contextlib.contextmanager
def sharing(share: Share):
    """Within the block, feature extraction in this process computes only ``share``'s part of the images."""
    global _current
    saved, _current = _current, share
    try:
        yield share
    finally:
        _current = saved


def current_share() -> Share | None:
    """The :class:`Share` of the data-parallel worker this process is, or None outside one."""
    return _current


def collective_barrier(strategy) -> Callable[[], None]:
    """Return a barrier over the workers of ``strategy`` (a ``MultiWorkerMirroredStrategy``): a tiny all-reduce."""
    import tensorflow as tf

    @tf.function
    def everyone():
        return strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)

    return lambda: everyone().numpy()


def extract_share(share: Share, extractor, keys: list, sources: list[tuple], *, batch_size: int,
                  on_progress=None, describe=None) -> None:
    """Compute this worker's share of every ``(images, rows)`` source into the shared arrays of ``keys``.

    Args:
        share: This worker's part.
        extractor: Pixels 0..255 → one output per key.
        keys: :class:`tltools.training.feature_cache.FeatureKey` per output.
        sources: ``(images, rows)`` pairs covering every row of the arrays once.
        batch_size: Images per forward pass.
        on_progress: Optional ``callable(done, total)`` over this worker's share.
        describe: ``callable(key, seconds)`` writing a finished key's description (chief only).

    Raises:
        OSError: The disk refused a write.
    """
    partial = {key.digest: key.npy_path.with_name(f".{key.stem}.shared.npy") for key in keys}
    try:
        _extract_share(share, extractor, keys, sources, batch_size, on_progress, describe, partial)
    finally:
        for path in partial.values():  # renamed into place, or left by a failure
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _extract_share(share, extractor, keys, sources, batch_size, on_progress, describe, partial) -> None:
    started = time.time()
    if share.rank == 0:
        for key in keys:
            shape = (key.description["images"], *key.description["feature_shape"])
            partial[key.digest].parent.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(partial[key.digest], mode="w+", dtype=np.float32, shape=shape).flush()
    share.barrier()  # the arrays exist
    mine = []
    for images, rows in sources:
        start, stop = share.span(len(rows))
        mine.append((images, np.asarray(rows), start, stop))
    total, done = sum(stop - start for *_, start, stop in mine), 0
    outputs = [np.lib.format.open_memmap(partial[key.digest], mode="r+") for key in keys]
    try:
        for images, rows, start, stop in mine:
            for first in range(start, stop, batch_size):
                last = min(first + batch_size, stop)
                results = extractor.predict_on_batch(np.asarray(images[first:last], dtype=np.float32))
                results = results if isinstance(results, (list, tuple)) else [results]
                for output, result in zip(outputs, results):
                    output[rows[first:last]] = np.asarray(result, dtype=np.float32)
                done += last - first
                if on_progress is not None:
                    on_progress(done, total)
        for output in outputs:
            output.flush()
    finally:
        del outputs
    share.barrier()  # every share written
    if share.rank == 0:
        for key in keys:
            os.replace(partial[key.digest], key.npy_path)
            if describe is not None:
                describe(key, time.time() - started)
    share.barrier()  # in place: every worker reads the whole array back
