"""A training process killed with SIGKILL leaves a run that reads back as interrupted, with a usable model."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tltools import runs
from tltools.model import load_model
from tltools.prediction import predict_images

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
    try:
        deadline = time.time() + 240
        while not (run_dir / runs.MODEL_FILE).exists():
            assert process.poll() is None, "the training process ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 4 minutes"
            time.sleep(0.2)
        assert runs.read_run(run_dir).status == runs.RUNNING
        time.sleep(1.0)  # let it get into the middle of later epochs
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    run = runs.read_run(run_dir)
    assert run.status == runs.INTERRUPTED
    assert "ended without finishing" in run.error
    model, classes, _ = load_model(run_dir)
    prediction = predict_images(model, classes, np.full((40, 40, 3), (200, 40, 40), np.uint8), top_k=1)[0]
    assert prediction.top[0]["label"] in classes
