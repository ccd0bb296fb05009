"""The custom training loop (tltools.distributed.loop) against Keras' fit, in this process.

One worker through the loop (the default strategy) and the ordinary ``fit`` path train the same
model on the same data and must end in the same place; both phases, class weights and Stop.
"""

import pytest
import tensorflow as tf

from tests.factories import fast_config
from tltools import runs
from tltools.training import StopRequest, TrainingLog, history_frame, train
from tltools.training.trainer import run_into


def loop_run(config, dataset, tmp_path, *, stop=None, log=None):
    """Train through the custom loop under the default strategy, as a distributed worker does."""
    writer = runs.RunWriter(tmp_path / "loop-run")
    return run_into(writer, config, dataset, log or TrainingLog(), None, stop or StopRequest(),
                    strategy=tf.distribute.get_strategy(), execution={"workers": 1, "executor": "loop"})


@pytest.mark.slow
def test_one_worker_through_the_loop_matches_fit(colours, tmp_path):
    config = fast_config(epochs=4, fine_tune_epochs=2, unfreeze="block:7", class_weights="balanced",
                         label_smoothing=0.1)
    ordinary = train(config, colours, runs_root=tmp_path)
    log = TrainingLog()
    looped = loop_run(config, colours, tmp_path, log=log)
    assert looped.metrics["executor"] == "loop" and ordinary.metrics["executor"] == "local"
    assert ordinary.metrics["workers"] == 1
    assert looped.metrics["epochs_run"] == ordinary.metrics["epochs_run"] == 6
    assert abs(looped.metrics["val"]["accuracy"] - ordinary.metrics["val"]["accuracy"]) <= 0.05
    assert looped.metrics["val"]["loss"] == pytest.approx(ordinary.metrics["val"]["loss"], rel=0.05, abs=0.01)
    ours, theirs = history_frame(looped.run.path), history_frame(ordinary.run.path)
    assert list(ours.columns) == list(theirs.columns)  # the same history.csv, loss and objective alike
    assert ours["loss"].values == pytest.approx(theirs["loss"].values, rel=0.05, abs=0.01)
    # The live log got per-batch and per-epoch records, both phases.
    state = log.snapshot()
    assert len(state["epochs"]) == 6 and {1, 2} == {record["phase"] for record in state["epochs"]}
    assert state["batches"] and "batch_loss" in state["batches"][-1]


@pytest.mark.slow
def test_a_stop_request_ends_the_loop_after_the_current_batch(colours, tmp_path):
    stop = StopRequest()

    def stop_after_first_batch(log):
        if log.snapshot()["batches"]:
            stop.stop()

    config = fast_config(epochs=5, fine_tune_epochs=3)
    log = TrainingLog()
    writer = runs.RunWriter(tmp_path / "stopped")
    result = run_into(writer, config, colours, log, stop_after_first_batch, stop,
                      strategy=tf.distribute.get_strategy(), execution={"workers": 1, "executor": "loop"})
    assert result.run.status == runs.STOPPED
    assert result.metrics["epochs_run"] == 1 and result.metrics["stopped_by_user"]
    assert len(log.snapshot()["batches"]) == 1


MIRRORED_RUN = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from tests.factories import fast_config
from tltools import runs
from tltools.data import load_dataset
from tltools.training import StopRequest, TrainingLog
from tltools.training.trainer import run_into
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
dataset = load_dataset(sys.argv[2], val_fraction=0.3, seed=0)
result = run_into(runs.RunWriter(sys.argv[3]), fast_config(epochs=3, batch_size=7), dataset, TrainingLog(), None,
                  StopRequest(), strategy=strategy,
                  execution={"workers": 1, "executor": "mirrored", "replicas": strategy.num_replicas_in_sync})
print(json.dumps(result.metrics))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_replicas_trains_through_the_same_loop(colours_dir, tmp_path):
    """Two logical CPUs stand in for two GPUs; batches of 7 leave one replica a padded, masked example."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-c", MIRRORED_RUN, str(REPO), str(colours_dir), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["executor"] == "mirrored" and metrics["replicas"] == 2 and metrics["epochs_run"] == 3
    assert metrics["val"]["accuracy"] >= 0.6
