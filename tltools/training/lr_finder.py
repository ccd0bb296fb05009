"""Learning-rate finder (fastai's ``lr_find``): sweep the LR up exponentially and watch the loss.

The model trains for up to ``steps`` batches while the learning rate grows
from ``min_lr`` to ``max_lr``; the sweep stops early once the loss diverges
(a running average, as fastai watches it). The curve shown and the two
suggestions use a *centred* smoothing of the recorded losses (a local
quadratic fit over neighbouring steps on both sides), which follows the points
without the lag of fastai's running average: the *steepest* descent, and
fastai's *valley* (about halfway down the longest falling stretch, usually a
little safer). The model's weights are restored afterwards.
"""

import dataclasses
import math

import numpy as np
import pandas as pd

from tltools.errors import TLToolsError
from tltools.training.optimizers import make_optimizer

SMOOTHING = 0.98  # running-average factor of the divergence check, as fastai uses
# Half-width of the centred smoothing window, as a share of the steps recorded.
SMOOTHING_WIDTH = 0.08
DIVERGE_FACTOR = 4.0  # stop when the smoothed loss exceeds this many times its minimum


@dataclasses.dataclass(frozen=True)
class LRFinderResult:
    """The sweep's curve and suggestions.

    Attributes:
        curve: One row per step: ``learning_rate``, ``loss``, ``smoothed_loss`` (centred, no lag).
        steepest: Learning rate where the smoothed loss falls fastest.
        valley: fastai's valley suggestion.
    """

    curve: pd.DataFrame
    steepest: float
    valley: float

    @property
    def suggested(self) -> float:
        """The recommended learning rate (the valley)."""
        return self.valley

    def to_dict(self) -> dict:
        """The result as plain JSON values (how it travels in a job's ``summary``)."""
        return {"curve": {name: [float(value) for value in self.curve[name]] for name in self.curve.columns},
                "steepest": float(self.steepest), "valley": float(self.valley)}

    @classmethod
    def from_dict(cls, data: dict) -> "LRFinderResult":
        """The result :meth:`to_dict` described.

        Raises:
            TLToolsError: ``data`` is not such a description.
        """
        try:
            return cls(pd.DataFrame(data["curve"]), float(data["steepest"]), float(data["valley"]))
        except (KeyError, TypeError, ValueError) as error:
            raise TLToolsError(f"the learning-rate finder's result is unreadable ({error}); run the finder again") \
                from None


def find_learning_rate(
    model,
    batches,
    *,
    loss,
    optimizer: str = "adam",
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    steps: int = 100,
) -> LRFinderResult:
    """Sweep the learning rate on ``model`` as it is frozen now, then restore its weights.

    Args:
        model: A built Keras model; its trainable layers are the ones the sweep trains.
            It is left compiled for the sweep: compile it again before training.
        batches: A ``tf.data.Dataset`` (or iterable) of ``(images, labels)`` training
            batches; it is repeated when shorter than ``steps``.
        loss: The loss to train with (as ``fit`` would use).
        optimizer: Optimizer name (see :func:`tltools.training.optimizers.make_optimizer`).
        min_lr: First learning rate.
        max_lr: Last learning rate.
        steps: Most batches to run.

    Returns:
        The curve and the suggested learning rates.

    Raises:
        TLToolsError: The range or step count is unusable, or the loss was never finite.
    """
    if not 0 < min_lr < max_lr:
        raise TLToolsError(f"learning-rate range {min_lr}..{max_lr} must satisfy 0 < min_lr < max_lr")
    if steps < 10:
        raise TLToolsError(f"steps={steps} is too few for a learning-rate sweep; use at least 10")
    saved = model.get_weights()
    model.compile(optimizer=make_optimizer(optimizer, min_lr), loss=loss)
    rows = []
    try:
        batch_iterator = iter(batches.repeat() if hasattr(batches, "repeat") else batches)
        average, best = 0.0, math.inf
        for step in range(steps):
            learning_rate = min_lr * (max_lr / min_lr) ** (step / (steps - 1))
            model.optimizer.learning_rate.assign(learning_rate)
            model.reset_metrics()
            images, labels = next(batch_iterator)
            value = float(np.asarray(model.train_on_batch(images, labels)).reshape(-1)[0])
            if not math.isfinite(value):
                break
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            smoothed = average / (1 - SMOOTHING ** (step + 1))
            rows.append((learning_rate, value))
            best = min(best, smoothed)
            if step > 5 and smoothed > DIVERGE_FACTOR * best:
                break
    finally:
        model.set_weights(saved)
    if len(rows) < 3:
        raise TLToolsError("the loss diverged at once; lower min_lr or check the data")
    curve = pd.DataFrame(rows, columns=["learning_rate", "loss"])
    curve["smoothed_loss"] = centred_smoothing(curve["loss"].to_numpy())
    # Like fastai, read the suggestions off the curve without its noisy first tenth and last 5 steps.
    core = curve.iloc[len(curve) // 10 : len(curve) - 5] if len(curve) >= 20 else curve
    return LRFinderResult(curve, steepest=_steepest(core), valley=_valley(core))


def centred_smoothing(values: np.ndarray, width: float = SMOOTHING_WIDTH) -> np.ndarray:
    """Smooth ``values`` with a Savitzky-Golay filter: a local quadratic fitted around each point, both sides.

    Centred, so the curve does not lag behind the points, and a local fit, so slopes and the
    ends of the sweep are followed rather than flattened.

    Args:
        values: The losses in sweep order.
        width: Half the window as a share of ``len(values)`` (the window has at least 5 points).

    Returns:
        An array as long as ``values`` (``values`` itself when there are too few to smooth).
    """
    from scipy.signal import savgol_filter

    values = np.asarray(values, dtype="float64")
    window = max(5, 2 * int(width * len(values)) + 1)
    if len(values) < window:
        window = len(values) - (1 - len(values) % 2)  # the largest odd window that fits
    if window < 5:
        return values.copy()
    return savgol_filter(values, window, polyorder=2, mode="interp")


def _steepest(curve: pd.DataFrame) -> float:
    """Learning rate at the most negative slope of smoothed loss over log10(lr)."""
    slopes = np.gradient(curve["smoothed_loss"].to_numpy(), np.log10(curve["learning_rate"].to_numpy()))
    return float(curve["learning_rate"].iloc[int(np.argmin(slopes))])


def _valley(curve: pd.DataFrame) -> float:
    """fastai's valley: the longest decreasing run of the loss, about halfway down it (fastai's formula)."""
    losses = curve["smoothed_loss"].to_numpy()
    count = len(losses)
    run_length = [1] * count
    start, end = 0, 0
    for i in range(1, count):
        for j in range(i):
            if losses[i] < losses[j] and run_length[i] < run_length[j] + 1:
                run_length[i] = run_length[j] + 1
            if run_length[end] < run_length[i]:
                end = i
                start = end - run_length[end]
    sections = (end - start) / 3
    return float(curve["learning_rate"].iloc[max(start + int(sections) + int(sections / 2), 0)])
