"""Jobs in worker processes: each job in its own process, the job folder as the channel, crashes contained.

Every test here starts worker processes that import TensorFlow, so all are slow. The queue logic
itself (places, cancelling, slots) is tested on threads in ``tests/test_jobs.py``.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.factories import fast_config
from tests.waiting import wait_until
from tltools import jobs, runs, worker

pytestmark = pytest.mark.slow
TRAINER = "tests.worker_trainers:until_stopped"


@pytest.fixture
def managers():
    """Return ``make(**kwargs)``: a process job manager, closed (warm worker let go) afterwards."""
    made = []

    def make(**kwargs) -> jobs.JobManager:
        made.append(jobs.JobManager(processes=True, **kwargs))
        return made[-1]

    yield make
    for manager in made:
        for job in manager.jobs():
            if not job.finished:
                manager.stop(job.job_id)
        for job in manager.jobs():
            manager.wait(job.job_id, timeout=120)
        manager.close()


def test_a_job_runs_in_its_own_process_reports_through_its_folder_and_honours_stop(managers, tmp_path):
    manager = managers(runs_root=tmp_path, trainer=TRAINER)
    job = manager.submit(fast_config(epochs=10_000), "data", owner="alice")
    wait_until(lambda: len(job.log.snapshot()["epochs"]) >= 3, 180, "no epochs arrived from the worker")
    assert job.status == jobs.RUNNING and job.pid not in (None, os.getpid())
    assert runs.read_run(job.run_dir).status == runs.RUNNING
    assert worker.read_json(job.run_dir / "status.json")["pid"] == job.pid, "the run records the worker's pid"
    assert (job.folder / worker.EVENTS_FILE).stat().st_size > 0

    manager.stop(job.job_id)
    manager.wait(job.job_id, timeout=60)
    assert job.status == jobs.STOPPED and job.metrics["pid"] == job.pid and job.metrics["epochs_run"] < 10_000
    assert runs.read_run(job.run_dir).status == runs.STOPPED and job.dataset is None
    assert not (job.folder / worker.JOB_FILE).exists(), "a finished job's pickled dataset is dropped"

    other = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True, warm=False)
    seen = other.get(job.job_id)  # another (or a restarted) server reads the job back from its folder
    assert seen is not job and seen.status == jobs.STOPPED and seen.metrics == job.metrics
    assert len(seen.log.snapshot()["epochs"]) == len(job.log.snapshot()["epochs"])
    other.close()


def test_a_trainer_that_cannot_be_imported_by_name_is_refused_at_once(tmp_path):
    with pytest.raises(jobs.TLToolsError, match="cannot be imported by name"):
        jobs.JobManager(runs_root=tmp_path, trainer=lambda *args, **kwargs: None, processes=True)


def test_a_killed_worker_fails_its_job_with_the_reason_leaves_the_run_interrupted_and_the_next_job_runs(
        managers, tmp_path, colours):
    from tltools.model import load_model

    manager = managers(runs_root=tmp_path)
    job = manager.submit(fast_config(epochs=500), colours, owner="alice")
    wait_until(lambda: job.log.snapshot()["epochs"] and (job.run_dir / runs.MODEL_FILE).is_file(), 300,
               "the worker never checkpointed")
    assert job.pid != os.getpid()
    os.kill(job.pid, signal.SIGKILL)  # what the OOM killer does
    manager.wait(job.job_id, timeout=60)
    assert job.status == jobs.FAILED and "SIGKILL" in job.error and str(job.pid) in job.error
    run = runs.read_run(job.run_dir)
    assert run.status == runs.INTERRUPTED and "SIGKILL" in run.error
    model, classes, _ = load_model(job.run_dir)
    assert classes == colours.classes and model.output_shape[-1] == len(classes)

    after = manager.submit(fast_config(epochs=1), colours, owner="bob")
    assert manager.wait(after.job_id, timeout=300).status == jobs.COMPLETED
    assert after.pid not in (job.pid, os.getpid())


SERVER = textwrap.dedent("""
    import sys, time
    from tests.factories import fast_config
    from tltools import jobs
    manager = jobs.JobManager(runs_root=sys.argv[1], trainer="tests.worker_trainers:until_stopped",
                              processes=True, warm=False)
    first = manager.submit(fast_config(epochs=10_000), "data")
    second = manager.submit(fast_config(epochs=3), "data-2")
    print(first.job_id, second.job_id, flush=True)
    while True:
        time.sleep(1)
""")


def test_a_restarted_server_runs_the_jobs_left_in_the_queue_and_reports_the_worker_that_died(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True, env=jobs._worker_env())
    try:
        first_id, second_id = server.stdout.readline().split()
        events = tmp_path / jobs.JOBS_FOLDER / first_id / worker.EVENTS_FILE
        wait_until(lambda: events.is_file() and events.stat().st_size > 200, 180, "the first job never trained")
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and its worker, as a crash of the whole service
        server.wait(30)

    manager = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True, warm=False)
    try:
        second = manager.get(second_id)
        assert second is not None and second.status in (jobs.QUEUED, jobs.RUNNING)
        manager.wait(second_id, timeout=180)
        assert second.status == jobs.COMPLETED and second.metrics["dataset"] == "data-2"
        assert second.metrics["pid"] not in (os.getpid(), server.pid)
        first = manager.wait(first_id, timeout=30)
        assert first.status == jobs.FAILED and "ended while no server watched it" in first.error
        assert runs.read_run(first.run_dir).status == runs.INTERRUPTED
    finally:
        manager.close()


def test_the_apps_job_trains_in_a_worker_process_not_in_the_server(colours, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tltools import app_state
    from tltools.streamlit_bridge import job_manager

    monkeypatch.setenv("TLTOOLS_JOB_PROCESSES", "1")
    job_manager.clear()
    try:
        app = AppTest.from_file(str(jobs.Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
        app.run()
        app.session_state[app_state.DATASET] = colours
        config = app.session_state[app_state.CONFIG]
        config.image_size, config.batch_size, config.val_fraction, config.seed = 64, 8, 0.3, 0
        app.switch_page("pages/train.py").run()
        app.number_input(key="train_epochs").set_value(2).run()
        app.button(key="train_start").click().run()
        manager = job_manager()
        assert manager.processes
        job = manager.wait(app.session_state[app_state.JOB_ID], timeout=300)
        assert job.status == jobs.COMPLETED, job.error
        recorded = worker.read_json(job.run_dir / "status.json")["pid"]
        assert recorded == job.pid and recorded != os.getpid(), "the run was trained by a worker process"
        app.run()
        assert any("Training completed" in message.value for message in app.success)
        assert len(app.get("plotly_chart")) == 3, "the live charts come from the worker's events"
    finally:
        job_manager().close()
        job_manager.clear()


def test_any_task_runs_as_a_job_with_its_options_and_reports_its_summary(managers, tmp_path):
    manager = managers(runs_root=tmp_path, trainer=TRAINER, warm=False)
    job = manager.submit(fast_config(), "data", task="tests.worker_trainers:echo_task",
                         options={"word": "hello", "times": 2})
    manager.wait(job.job_id, timeout=180)
    assert job.status == jobs.COMPLETED, job.error
    assert job.summary == {"said": ["hello", "hello"]} and job.metrics["pid"] not in (None, os.getpid())
    assert [text for text in job.log.snapshot()["messages"] if "hello" in str(text)], "the task's log reached the server"
    seen = jobs.JobManager(runs_root=tmp_path, trainer=TRAINER, processes=True, warm=False)
    assert seen.get(job.job_id).summary == job.summary and seen.get(job.job_id).task == job.task
    seen.close()
