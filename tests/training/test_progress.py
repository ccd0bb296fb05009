"""Training progress as the Train page shows it: phase-local epochs, a per-phase ETA, each batch's own loss."""

import keras
import numpy as np
import pytest

from tltools.training import TrainingLog
from tltools.training.callbacks.metrics_recorder import MetricsRecorder
from tltools.training.progress import phase_eta, progress_text


def state(**values) -> dict:
    base = {"phase": 0, "phase_name": "starting", "total_epochs": 0, "epoch": 0, "phase_epoch": 0, "phase_epochs": 0,
            "steps_per_epoch": 0, "step": 0, "learning_rate": None, "epoch_started_at": None, "epochs": [],
            "elapsed": 3.0}
    base.update(values)
    base.setdefault("eta", phase_eta(base, now=100.0))
    return base


def test_before_the_first_epoch_it_says_what_it_is_doing_not_epoch_0_of_0():
    done, text = progress_text(state(phase_name="decoding images (10/96)"), 2)
    assert done == 0.0 and text == "Decoding images (10/96)… (3 s so far)"


def test_fine_tuning_counts_its_own_epochs_and_times_them_apart_from_the_head_epochs():
    head = [{"epoch": e, "phase": 1, "seconds": 0.1} for e in range(1, 6)]  # 5 fast head epochs (cached features)
    tuned = [{"epoch": 6, "phase": 2, "seconds": 4.0}]
    now = state(phase=2, phase_name="fine-tuning (unfreeze 30)", total_epochs=203, epoch=7, phase_epoch=2,
                phase_epochs=3, steps_per_epoch=10, step=5, epochs=head + tuned, epoch_started_at=98.0)
    assert now["eta"] == pytest.approx((3 - 1 - 0.5) * 4.0)  # from phase 2's own epoch time, not the mean of all
    done, text = progress_text(now, 2)
    assert text.startswith("Phase 2 of 2, fine-tuning (unfreeze 30): epoch 2 of at most 3")
    # Phase 1 stopped early after 5 of its 200 epochs: overall, at most 5 + 3 epochs are left to count.
    assert "about 6 s left in this phase" in text and "overall epoch 7 of at most 8" in text
    assert done == pytest.approx(6.5 / 8)


def test_the_first_epoch_of_a_phase_is_timed_from_its_own_pace():
    now = state(phase=1, phase_name="training the head", total_epochs=10, epoch=1, phase_epoch=1, phase_epochs=10,
                steps_per_epoch=4, step=1, epoch_started_at=98.0)  # a quarter of an epoch in 2 s
    assert now["eta"] == pytest.approx((10 - 0.25) * 8.0)
    assert state(phase=1, total_epochs=10, epoch=1, phase_epoch=1, phase_epochs=10, steps_per_epoch=4,
                 step=0, epoch_started_at=98.0)["eta"] is None


def test_the_recorder_counts_epochs_per_fit_call_and_recovers_each_batchs_own_loss():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), np.eye(2)[rng.integers(0, 2, 32)]
    log = TrainingLog()
    recorder = MetricsRecorder(log)
    seen = []

    class Peek(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((log.value("epoch"), log.value("phase_epoch"), log.value("phase_epochs")))

    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[recorder, Peek()])
    model.fit(x, y, batch_size=8, initial_epoch=2, epochs=5, verbose=0, shuffle=False, callbacks=[recorder, Peek()])
    assert seen == [(1, 1, 2), (2, 2, 2), (3, 1, 3), (4, 2, 3), (5, 3, 3)]
    batches = log.snapshot()["batches"]
    first_epoch = [batch for batch in batches if batch["epoch"] == 1]
    own = [batch["batch_loss"] for batch in first_epoch]
    running = np.cumsum(own) / np.arange(1, len(own) + 1)
    np.testing.assert_allclose(running, [batch["loss"] for batch in first_epoch], rtol=1e-5)
    assert max(own) - min(own) > 0  # real per-batch values, not the running mean's smooth steps
