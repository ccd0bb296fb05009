"""``workers`` > 1: real worker processes through Ray Train's TensorflowTrainer on a local Ray (2 CPUs).

One local Ray instance (127.0.0.1, no dashboard) serves the whole module; runs see it initialised and
leave it running. Every test here starts worker processes that import TensorFlow: slow tier.
"""

import os
import signal
import threading
import time

import numpy as np
import pytest

from tests.factories import fast_config
from tests.waiting import wait_until
from tltools import runs
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.training import StopRequest, TrainingLog, train

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-ray.txt)")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A local Ray for the module, as `--workers N` starts one: 127.0.0.1, two CPUs, no dashboard."""
    from tltools.distributed.launch import connect

    if ray.is_initialized():  # another module's Ray, left running: this module wants the one --workers starts
        ray.shutdown()
    assert connect(None, 2)
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")  # bound to the loopback only
    yield
    ray.shutdown()


def cached_arrays(cache) -> dict:
    return {path.name: np.load(path) for path in sorted((cache / "features").glob("*.npy"))}


def test_two_workers_train_in_two_processes_as_well_as_one(colours, tmp_path, monkeypatch):
    config = fast_config(epochs=4, fine_tune_epochs=1, unfreeze="block:7")
    log = TrainingLog()
    monkeypatch.setenv("TLTOOLS_CACHE", str(tmp_path / "cache-two"))  # each run extracts its features
    two = train(config.replace(workers=2), colours, log=log, runs_root=tmp_path / "runs")
    monkeypatch.setenv("TLTOOLS_CACHE", str(tmp_path / "cache-one"))
    one = train(config, colours, runs_root=tmp_path / "runs")

    metrics = runs.read_run(two.run.path).metrics
    assert metrics["workers"] == 2 and metrics["executor"] == "ray-mwms"
    assert one.metrics["workers"] == 1 and one.metrics["executor"] == "local"
    pids = metrics["worker_pids"]
    assert metrics["worker_nodes"] == ["127.0.0.1", "127.0.0.1"]
    assert len(set(pids)) == 2 and os.getpid() not in pids  # two real processes, neither of them this one
    assert two.run.status == runs.COMPLETED and two.metrics["epochs_run"] == one.metrics["epochs_run"] == 5
    assert abs(two.metrics["val"]["accuracy"] - one.metrics["val"]["accuracy"]) <= 0.1
    assert two.metrics["val"]["loss"] == pytest.approx(one.metrics["val"]["loss"], rel=0.15, abs=0.05)
    # The chief's live log reached this process: both phases' epochs, batches and the workers' pids.
    state = log.snapshot()
    assert [record["epoch"] for record in state["epochs"]] == [1, 2, 3, 4, 5]
    assert state["batches"] and any("Data-parallel: 2 workers" in message for message in state["messages"])
    # The two workers computed half the images each into the shared cache: the same arrays as one process.
    assert metrics["feature_cache"] == "miss" and metrics["feature_images_computed"] == len(colours.items)
    shared, alone = cached_arrays(tmp_path / "cache-two"), cached_arrays(tmp_path / "cache-one")
    assert shared.keys() == alone.keys() and len(shared) == 2  # phase 1's pooled features, phase 2's cut
    for name, array in shared.items():
        np.testing.assert_allclose(array, alone[name], rtol=1e-4, atol=1e-4)
    # Only the chief wrote the run folder; the other worker's scratch folder is gone.
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == sorted([two.run.path.name,
                                                                                  one.run.path.name])


def test_a_killed_worker_fails_the_run_with_its_reason(colours, tmp_path):
    config = fast_config(epochs=2000, workers=2, early_stopping_patience=0, reduce_lr_patience=0)
    log = TrainingLog()
    outcome = {}

    def run():
        try:
            outcome["result"] = train(config, colours, log=log, runs_root=tmp_path)
        except TLToolsError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: len(log.snapshot()["epochs"]) >= 2, 180, "two epochs on two workers")
    line = next(message for message in log.snapshot()["messages"] if "Data-parallel: 2 workers" in message)
    other = int(line.rsplit("pids ", 1)[1].split(", ")[1].split(" ")[0])  # worker 1's pid
    killed_at = time.monotonic()
    os.kill(other, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run hung after a worker was killed"
    assert "error" in outcome and "worker" in str(outcome["error"])
    run_path = next(tmp_path.iterdir())
    info = runs.read_run(run_path)
    assert info.status == runs.FAILED and "worker" in info.error
    assert time.monotonic() - killed_at < 120


def test_stop_reaches_every_worker_and_keeps_the_best_model(colours_dir, tmp_path, monkeypatch):
    config = fast_config(epochs=2000, workers=2, early_stopping_patience=0, reduce_lr_patience=0)
    log, stop = TrainingLog(), StopRequest()
    outcome = {}
    monkeypatch.chdir(colours_dir.parent)  # a dataset given by a relative path, as on the command line
    relative = load_dataset(colours_dir.name, val_fraction=0.3, seed=0)

    def run():
        outcome["result"] = train(config, relative, log=log, stop=stop, runs_root=tmp_path)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: len(log.snapshot()["epochs"]) >= 2, 180, "two epochs on two workers")
    stop.stop()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the workers did not stop"
    result = outcome["result"]
    assert result.run.status == runs.STOPPED and result.metrics["stopped_by_user"]
    assert 2 <= result.metrics["epochs_run"] < 2000 and result.metrics["workers"] == 2
    assert result.model.predict(np.zeros((1, 64, 64, 3), np.float32), verbose=0).shape == (1, 3)


def test_a_failure_names_the_workers_and_the_error():
    from tltools.distributed.launch import worker_failure

    text = ("Training failed due to worker errors:\n[Rank 0,1 Error Snippet]:\nTraceback (most recent call last):\n"
            "  File \"x.py\", line 1, in f\nValueError: bad value\n  [[{{node x}}]]")
    assert worker_failure(RuntimeError(text)) == ("data-parallel training failed: workers 0, 1 failed: "
                                                  "ValueError: bad value")
    one = worker_failure(RuntimeError("[Rank 1 Error Snippet]:\nRuntimeError: boom"))
    assert one == "data-parallel training failed: worker 1 failed: RuntimeError: boom"

