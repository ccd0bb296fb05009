"""Jobs on a Ray cluster (``TLTOOLS_RAY_ADDRESS``): the same JobManager the app uses, a local Ray instance.

One Ray instance (2 CPUs, no dashboard, held to 127.0.0.1 as the data-parallel runs' local Ray is)
serves the whole module; each test makes
its own manager. Every test that starts Ray is slow; the one that checks the missing-Ray message is not.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import fast_config
from tests.waiting import wait_until
from tltools import jobs, ray_executor, runs, worker
from tltools.errors import TLToolsError

TRAINER = "tests.worker_trainers:until_stopped"


@pytest.fixture(scope="module")
def ray_cluster():
    """Start one local Ray instance for the module and point ``TLTOOLS_RAY_ADDRESS`` at it; shut it down after."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-ray.txt)")
    started = not ray.is_initialized()  # another module's instance (the data-parallel tests) is used as it is
    if started:
        from tltools.distributed.launch import _loopback_only  # the one place that holds a local Ray to 127.0.0.1

        with _loopback_only(ray):
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False)
    saved = os.environ.get("TLTOOLS_RAY_ADDRESS")
    os.environ["TLTOOLS_RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    yield ray
    if saved is None:
        os.environ.pop("TLTOOLS_RAY_ADDRESS", None)
    else:
        os.environ["TLTOOLS_RAY_ADDRESS"] = saved
    if started:
        ray.shutdown()


@pytest.fixture
def manager(ray_cluster, tmp_path):
    """A process job manager on the Ray instance (as the app's, from the environment), with a stand-in trainer."""
    made = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True)
    yield made
    for job in made.jobs():
        if not job.finished:
            made.stop(job.job_id)
    for job in made.jobs():
        made.wait(job.job_id, timeout=120)
    made.close()


@pytest.mark.slow
def test_a_job_runs_as_a_ray_task_reports_through_its_folder_says_where_and_honours_stop(manager):
    assert manager._ray is not None and not manager.warm, "with TLTOOLS_RAY_ADDRESS there is no local warm worker"
    job = manager.submit(fast_config(epochs=10_000), "data", owner="alice")
    wait_until(lambda: len(job.log.snapshot()["epochs"]) >= 3, 180, "no epochs arrived from the Ray task")
    wait_until(lambda: (job.where or "").startswith("Ray node"), 30, f"the job never said where it runs: {job.where}")
    assert job.status == jobs.RUNNING and job.pid not in (None, os.getpid())
    assert f"pid {job.pid}" in job.where
    assert worker.read_json(job.run_dir / "status.json")["pid"] == job.pid, "the run records the Ray worker's pid"

    manager.stop(job.job_id)
    manager.wait(job.job_id, timeout=60)
    assert job.status == jobs.STOPPED and job.metrics["pid"] == job.pid and job.metrics["epochs_run"] < 10_000
    assert runs.read_run(job.run_dir).status == runs.STOPPED
    assert worker.read_json(job.folder / worker.STATE_FILE)["where"] == job.where, "where it ran is kept on disk"


@pytest.mark.slow
def test_the_local_ray_instance_listens_on_the_loopback_only(ray_cluster):
    assert os.environ["TLTOOLS_RAY_ADDRESS"].startswith("127.0.0.1:")
    node = ray_cluster.nodes()[0]
    ports = {int(os.environ["TLTOOLS_RAY_ADDRESS"].rsplit(":", 1)[1]), node["NodeManagerPort"],
             node["ObjectManagerPort"]}  # the GCS, the raylet, the object manager of this instance
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=False).stdout
    local = {}
    for line in listening.splitlines():
        host, _, port = line.split()[3].rpartition(":")
        if int(port) in ports:
            local[int(port)] = host
    assert set(local) == ports, (ports, listening)
    assert all(host in ("127.0.0.1", "[::ffff:127.0.0.1]") for host in local.values()), local


@pytest.mark.slow
def test_any_task_runs_on_ray_with_its_options_and_reports_its_summary(manager):
    job = manager.submit(fast_config(), "data", task="tests.worker_trainers:echo_task",
                         options={"word": "hello", "times": 2})
    manager.wait(job.job_id, timeout=180)
    assert job.status == jobs.COMPLETED, job.error
    assert job.summary == {"said": ["hello", "hello"]} and job.metrics["pid"] != os.getpid()
    assert job.log.snapshot()["messages"][-2:] == ["hello", "hello"]


@pytest.mark.slow
def test_a_killed_ray_task_fails_its_job_with_the_reason_and_leaves_its_run_interrupted(manager):
    job = manager.submit(fast_config(epochs=10_000), "data")
    wait_until(lambda: len(job.log.snapshot()["epochs"]) >= 2 and (job.where or "").startswith("Ray node"), 180,
               "the Ray task never started")
    os.kill(job.pid, signal.SIGKILL)
    manager.wait(job.job_id, timeout=120)
    assert job.status == jobs.FAILED
    assert job.error.startswith("the job's Ray task (Ray node") and "failed on the Ray cluster" in job.error, job.error
    assert runs.read_run(job.run_dir).status == runs.INTERRUPTED

    after = manager.submit(fast_config(epochs=2), "data")  # the cluster and the manager go on
    manager.wait(after.job_id, timeout=180)
    assert after.status == jobs.COMPLETED, after.error


@pytest.mark.slow
def test_a_real_training_job_trains_on_ray_and_saves_a_loadable_model(ray_cluster, tmp_path, colours):
    from tltools.model import load_model

    manager = jobs.JobManager(runs_root=tmp_path, processes=True)
    job = manager.submit(fast_config(epochs=2), colours)
    manager.wait(job.job_id, timeout=600)
    assert job.status == jobs.COMPLETED, job.error
    assert job.where.startswith("Ray node") and job.pid != os.getpid()
    assert worker.read_json(job.run_dir / "status.json")["pid"] == job.pid
    assert job.metrics["epochs_run"] == 2 and 0 <= job.metrics["val"]["accuracy"] <= 1
    model, classes = load_model(job.run_dir / "model.keras")[:2]
    assert classes == colours.classes and model.output_shape[-1] == len(colours.classes)


@pytest.mark.slow
@pytest.mark.hostile
def test_a_folder_the_ray_workers_do_not_share_is_refused_with_one_line(ray_cluster, tmp_path, monkeypatch):
    """The server's marker never reaches the workers' view of the folder (as on a node without the NFS mount)."""
    monkeypatch.setattr(ray_executor, "write_marker", lambda path, token: None)
    manager = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True)
    with pytest.raises(TLToolsError) as refused:
        manager.submit(fast_config(), "data")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("a Ray worker cannot use TLTOOLS_HOME=")
    assert "mount the same shared folder" in message
    assert manager.jobs() == [] and not (tmp_path / jobs.JOBS_FOLDER).exists(), "nothing was queued"
    for folder in (tmp_path, Path(os.environ["TLTOOLS_HOME"]), Path(os.environ["TLTOOLS_CACHE"])):
        assert not list(folder.glob(f"{ray_executor.MARKER}-*")), "the check cleans up after itself"


@pytest.mark.slow
def test_the_storage_check_passes_on_shared_folders_and_runs_once_per_folder(ray_cluster, tmp_path, monkeypatch):
    executor = ray_executor.RayExecutor(os.environ["TLTOOLS_RAY_ADDRESS"])
    executor.check_storage({"TLTOOLS_HOME": tmp_path / "home", "TLTOOLS_CACHE": tmp_path / "cache"})
    assert not list(tmp_path.glob(f"*/{ray_executor.MARKER}-*")), "the markers and answers are removed"

    def no_cluster():
        raise AssertionError("a folder already checked is not checked again")

    monkeypatch.setattr(executor, "connect", no_cluster)
    executor.check_storage({"TLTOOLS_HOME": tmp_path / "home", "TLTOOLS_CACHE": tmp_path / "cache"})


@pytest.mark.hostile
def test_without_ray_installed_the_address_is_refused_with_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(TLToolsError) as refused:
        jobs.JobManager(processes=True, warm=False, ray_address="ray://head:10001")
    assert str(refused.value) == ("TLTOOLS_RAY_ADDRESS='ray://head:10001' is set but Ray is not installed; run "
                                  "`pip install -r requirements-ray.txt` or unset TLTOOLS_RAY_ADDRESS to train "
                                  "on this machine")


def test_without_the_variable_nothing_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("TLTOOLS_RAY_ADDRESS", raising=False)
    manager = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True, warm=False)
    assert manager._ray is None
    manager.close()


@pytest.mark.slow
def test_a_job_on_another_node_is_followed_by_its_heartbeat_and_fails_when_it_stops(tmp_path, monkeypatch):
    """A server that did not start a Ray job (a restart) cannot check a pid on another machine: the heartbeat decides."""
    monkeypatch.setattr(jobs, "HEARTBEAT_TIMEOUT_S", 1.5)
    folder = tmp_path / jobs.JOBS_FOLDER / "0123abcd"
    folder.mkdir(parents=True)
    worker.write_json(folder / worker.JOB_META, {
        "job_id": "0123abcd", "owner": None, "config": fast_config().to_dict(), "run_dir": str(tmp_path / "run"),
        "submitted_at": "2026-01-01T00:00:00"})
    worker.write_json(folder / worker.STATE_FILE, {"status": "running", "pid": 4242, "host": "another-node",
                                                   "where": "Ray node 0f0f on another-node, pid 4242"})
    manager = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True, warm=False, ray_address="")
    job = manager.get("0123abcd")
    for beat in range(6):  # beating: followed as running, however long
        (folder / worker.HEARTBEAT_FILE).write_text(str(beat))
        time.sleep(0.5)  # time passing is the point here: three timeouts' worth of beats in all
        assert job.status == jobs.RUNNING
    manager.wait(job.job_id, timeout=20)  # no more beats: taken for dead within the timeout
    assert job.status == jobs.FAILED
    assert job.error == ("the job's Ray task (Ray node 0f0f on another-node, pid 4242) stopped beating while no "
                         "server watched it before the job finished")


@pytest.mark.hostile
def test_the_app_says_in_one_line_that_ray_is_missing_instead_of_failing(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tltools.streamlit_bridge import job_manager

    monkeypatch.setenv("TLTOOLS_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("TLTOOLS_JOB_PROCESSES", "1")
    monkeypatch.setitem(sys.modules, "ray", None)
    job_manager.clear()
    try:
        app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
        app.run()
        assert not app.exception, app.exception
        assert [error.value for error in app.error] == [
            "TLTOOLS_RAY_ADDRESS='ray://head:10001' is set but Ray is not installed; run "
            "`pip install -r requirements-ray.txt` or unset TLTOOLS_RAY_ADDRESS to train on this machine"]
    finally:
        job_manager.clear()  # the next test's app gets a manager made with the usual settings
