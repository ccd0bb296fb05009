"""Background training jobs: queueing, stopping, failures, and a run folder per job."""

import time

import pytest

from tests.factories import fast_config
from tltools import jobs, runs
from tltools.errors import TLToolsError


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    return jobs.JobManager(max_concurrent=1, runs_root=tmp_path_factory.mktemp("job-runs"))


def test_a_job_trains_in_the_background_into_its_own_run_folder(manager, colours):
    job = manager.submit(fast_config(epochs=1), colours, owner="alice")
    assert job.status in (jobs.QUEUED, jobs.RUNNING)
    manager.wait(job.job_id, timeout=300)
    assert job.status == jobs.COMPLETED and job.metrics["epochs_run"] == 1
    assert job.run_dir.name.endswith(job.job_id)
    assert runs.read_run(job.run_dir).status == runs.COMPLETED
    assert job.log.snapshot()["epochs"], "the live log was filled while training"


def test_jobs_queue_one_at_a_time_and_know_their_place(manager, colours):
    first = manager.submit(fast_config(epochs=2), colours, owner="alice")
    second = manager.submit(fast_config(epochs=1), colours, owner="bob")
    third = manager.submit(fast_config(epochs=1), colours, owner="bob")
    while first.status == jobs.QUEUED:
        time.sleep(0.05)
    assert manager.queue_position(second.job_id) == 1
    assert manager.queue_position(third.job_id) == 2
    assert second.status == jobs.QUEUED
    for job in (first, second, third):
        manager.wait(job.job_id, timeout=300)
    assert [job.status for job in (first, second, third)] == [jobs.COMPLETED] * 3
    assert len({first.run_dir, second.run_dir, third.run_dir}) == 3
    assert [job.job_id for job in manager.jobs(owner="bob")] == [third.job_id, second.job_id]


def test_stopping_a_queued_job_cancels_it_without_a_run(manager, colours):
    running = manager.submit(fast_config(epochs=2), colours)
    waiting = manager.submit(fast_config(epochs=1), colours)
    manager.stop(waiting.job_id)
    manager.wait(running.job_id, timeout=300)
    manager.wait(waiting.job_id, timeout=60)
    assert waiting.status == jobs.STOPPED and "cancelled" in waiting.error
    assert not waiting.run_dir.exists()


def test_stopping_a_running_job_keeps_its_best_model(manager, colours):
    job = manager.submit(fast_config(epochs=100), colours)
    while not job.log.snapshot()["epochs"]:
        time.sleep(0.05)
    manager.stop(job.job_id)
    manager.wait(job.job_id, timeout=120)
    assert job.status == jobs.STOPPED
    assert (job.run_dir / runs.MODEL_FILE).is_file()


def test_a_failing_job_reports_the_reason(manager, colours):
    job = manager.submit(fast_config(epochs=1, fine_tune_epochs=1, unfreeze="block:99"), colours)
    manager.wait(job.job_id, timeout=300)
    assert job.status == jobs.FAILED and "block" in job.error
    assert runs.read_run(job.run_dir).status == runs.FAILED


def test_unknown_jobs_and_bad_settings_are_clear_errors(manager, colours):
    assert manager.get("nope") is None
    with pytest.raises(TLToolsError, match="no training job"):
        manager.stop("nope")
    with pytest.raises(TLToolsError, match="max_concurrent=0"):
        jobs.JobManager(max_concurrent=0)
