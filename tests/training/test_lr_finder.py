"""The learning-rate finder: a loss curve, sensible suggestions, and the model left untouched."""

import numpy as np
import pytest

from tests.factories import fast_config
from tltools.errors import TLToolsError
from tltools.training import suggest_learning_rate
from tltools.training.lr_finder import _valley, find_learning_rate


@pytest.fixture(scope="module")
def sweep(colours):
    return suggest_learning_rate(fast_config(), colours, steps=40, min_lr=1e-6, max_lr=10.0)


@pytest.mark.slow
def test_the_sweep_raises_the_learning_rate_exponentially(sweep):
    rates = sweep.curve["learning_rate"].to_numpy()
    assert rates[0] == pytest.approx(1e-6)
    ratios = rates[1:] / rates[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)


def test_suggestions_lie_inside_the_swept_range_below_divergence(sweep):
    low, high = sweep.curve["learning_rate"].min(), sweep.curve["learning_rate"].max()
    for rate in (sweep.suggested, sweep.steepest, sweep.valley):
        assert low <= rate <= high
    assert sweep.suggested == sweep.valley
    best = sweep.curve["smoothed_loss"].idxmin()
    assert sweep.valley <= sweep.curve["learning_rate"][best]


def test_the_sweep_stops_once_the_loss_diverges():
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    batches = [(rng.normal(0, 10, (16, 8)).astype("float32"), np.eye(3)[rng.integers(0, 3, 16)]) for _ in range(100)]
    result = find_learning_rate(model, iter(batches), loss=keras.losses.CategoricalCrossentropy(), optimizer="sgd",
                                min_lr=1e-4, max_lr=1e4, steps=100)
    assert len(result.curve) < 100
    assert result.curve["smoothed_loss"].iloc[-1] > 3 * result.curve["smoothed_loss"].min()


@pytest.mark.slow
def test_the_model_weights_are_restored_after_the_sweep(colours):
    from tltools.model import build_model
    from tltools.training.trainer import prepare_data

    model = build_model("efficientnet_lite0", colours.classes, input_size=64)
    before = [w.copy() for w in model.get_weights()]
    data = prepare_data(fast_config(), colours, 64)
    import keras

    find_learning_rate(model, data.train, loss=keras.losses.CategoricalCrossentropy(), steps=15, max_lr=100.0)
    for after, original in zip(model.get_weights(), before):
        np.testing.assert_array_equal(after, original)


def test_valley_follows_fastais_formula():
    import pandas as pd

    # Longest fall: indices 0..5 (run length 6), so start = 5 - 6 = -1, sections = 2,
    # and fastai picks index -1 + 2 + 1 = 2.
    losses = [5, 4, 3, 2, 1, 0.5, 3, 9]
    curve = pd.DataFrame({"learning_rate": [10.0**-i for i in range(8, 0, -1)], "smoothed_loss": losses})
    assert _valley(curve) == curve["learning_rate"][2]


@pytest.mark.parametrize("kwargs", [dict(min_lr=1.0, max_lr=0.1), dict(steps=3)])
def test_unusable_sweeps_are_refused(kwargs, colours):
    with pytest.raises(TLToolsError):
        find_learning_rate(None, None, loss=None, **kwargs)


def test_the_smoothed_curve_does_not_lag_behind_the_points():
    from tltools.training.lr_finder import centred_smoothing

    rng = np.random.default_rng(0)
    steps = np.arange(60)
    losses = np.abs(steps - 40) / 10 + 0.5 + rng.normal(0, 0.05, 60)  # falls to a minimum at step 40, then rises
    smoothed = centred_smoothing(losses)
    assert len(smoothed) == 60 and abs(int(np.argmin(smoothed)) - 40) <= 2
    away = np.abs(steps - 40) > 8  # away from the corner, where any smoothing rounds it off
    assert np.abs(smoothed - (np.abs(steps - 40) / 10 + 0.5))[away].max() < 0.06  # follows the points, no lag
    assert len(centred_smoothing(np.array([1.0, 2.0, 3.0]))) == 3
