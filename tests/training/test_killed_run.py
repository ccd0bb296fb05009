"""A training process killed with SIGKILL leaves a run that reads back as interrupted, with a usable model."""

import os
import signal
import subprocess
import sys

import pytest

from tests.factories import COLOURS, colour_images
from tests.waiting import wait_until
from tltools import runs
from tltools.model import load_model
from tltools.prediction import predict_images

pytestmark = pytest.mark.slow

TRAINER = """
import sys
from tltools.data import load_dataset
from tltools.training import TrainConfig, train
dataset = load_dataset(sys.argv[1], val_fraction=0.3, seed=0)
train(TrainConfig(image_size=64, epochs=500, batch_size=8, val_fraction=0.3, seed=0, early_stopping_patience=0),
      dataset, run_dir=sys.argv[2])
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_a_killed_run_is_interrupted_and_its_best_checkpoint_predicts(colours_dir, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", TRAINER, str(colours_dir), str(run_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())

    def checkpoint_written() -> int | None:
        assert process.poll() is None, "the training process ended before it was killed"
        model_file = run_dir / runs.MODEL_FILE
        return model_file.stat().st_ino if model_file.exists() else None

    try:
        first = wait_until(checkpoint_written, 240, "no checkpoint within 4 minutes")
        assert runs.read_run(run_dir).status == runs.RUNNING
        # The first checkpoint is the first epoch's; wait for a later, better one (written at most every 10 s).
        wait_until(lambda: checkpoint_written() not in (None, first), 120, "the checkpoint was never rewritten")
        process.send_signal(signal.SIGKILL)  # in the middle of a later epoch
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    run = runs.read_run(run_dir)
    assert run.status == runs.INTERRUPTED
    assert "ended without finishing" in run.error
    model, classes, _ = load_model(run_dir)
    assert sorted(classes) == sorted(COLOURS)
    # New images of each colour, never seen in training: the checkpoint is a trained model, not a random one.
    fresh = colour_images(COLOURS, 4, seed=99)
    truth = [name.split("/")[0] for name in fresh]
    predictions = predict_images(model, classes, list(fresh.values()), top_k=1)
    predicted = [prediction.top[0]["label"] for prediction in predictions]
    assert predicted == truth
