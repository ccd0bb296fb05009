"""Background training jobs: queueing, stopping, failures, and a run folder per job."""

import threading
import time
import types

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


class FakeTrain:
    """Stands in for :func:`tltools.training.train`: records the order and overlap of the jobs it runs.

    Every job holds its worker until :attr:`release` is set.
    """

    def __init__(self):
        self.release = threading.Event()
        self.started: list[str] = []
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()

    def __call__(self, config, dataset, *, run_dir, **_):
        with self._lock:
            self.started.append(run_dir.name)
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            assert self.release.wait(60), "the test never released the jobs"
        finally:
            with self._lock:
                self._running -= 1
        return types.SimpleNamespace(metrics={"trained_on": dataset, "epochs": config.epochs})

    def wait_started(self, count: int) -> None:
        """Block until ``count`` jobs have started."""
        deadline = time.monotonic() + 30
        while len(self.started) < count:
            assert time.monotonic() < deadline, f"{len(self.started)} of {count} jobs started"
            time.sleep(0.01)


@pytest.fixture
def fake_train(monkeypatch):
    """A :class:`FakeTrain` in place of ``train`` in :mod:`tltools.jobs`."""
    fake = FakeTrain()
    monkeypatch.setattr(jobs, "train", fake)
    return fake


@pytest.fixture
def make_manager(fake_train, tmp_path):
    """Return ``make(max_concurrent)``: a job manager whose jobs run :class:`FakeTrain`, run folders in ``tmp_path``.

    Afterwards the jobs still queued are cancelled and the running ones let go, so no worker
    calls the real ``train`` once the patch is undone.
    """
    managers = []

    def make(max_concurrent: int) -> jobs.JobManager:
        managers.append(jobs.JobManager(max_concurrent=max_concurrent, runs_root=tmp_path))
        return managers[-1]

    yield make
    for manager in managers:
        for job in manager.jobs():
            manager.stop(job.job_id)
    fake_train.release.set()
    for manager in managers:
        for job in manager.jobs():
            manager.wait(job.job_id, timeout=30)


def submit_from_threads(manager, threads: int, per_thread: int) -> dict[int, list]:
    """Submit ``per_thread`` jobs from each of ``threads`` threads, all released at the same moment.

    Thread ``t``'s jobs train on the dataset ``"data-t"`` with ``epochs`` = its number among them + 1.
    """
    submitted = {thread: [] for thread in range(threads)}
    barrier = threading.Barrier(threads)

    def submit(thread: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            submitted[thread].append(manager.submit(fast_config(epochs=n + 1), f"data-{thread}", owner=f"user-{thread}"))

    workers = [threading.Thread(target=submit, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return submitted


def test_many_threads_submitting_and_cancelling_at_once_keep_one_orderly_queue(make_manager, fake_train):
    manager = make_manager(1)
    submitted = submit_from_threads(manager, threads=8, per_thread=5)
    every = [job for thread_jobs in submitted.values() for job in thread_jobs]
    assert len({job.job_id for job in every}) == len({job.run_dir for job in every}) == len(every) == 40
    fake_train.wait_started(1)

    # One job trains; the other 39 hold places 1..39, one each.
    places = {job.job_id: manager.queue_position(job.job_id) for job in every}
    queued = sorted((job for job in every if places[job.job_id] is not None), key=lambda job: places[job.job_id])
    assert [places[job.job_id] for job in queued] == list(range(1, 40))
    assert all(job.status == jobs.QUEUED for job in queued)
    (running_first,) = [job for job in every if job not in queued]
    assert running_first.status == jobs.RUNNING
    for thread, thread_jobs in submitted.items():  # each thread's jobs wait in the order it submitted them
        own = [places[job.job_id] for job in thread_jobs if job in queued]
        assert own == sorted(own)
        assert manager.jobs(owner=f"user-{thread}") == list(reversed(thread_jobs))

    # Two users cancel all their waiting jobs at once: the jobs behind them move up at once, in order.
    cancelled = [job for thread in (2, 5) for job in submitted[thread] if job in queued]
    cancellers = [threading.Thread(target=manager.stop, args=(job.job_id,)) for job in cancelled]
    for canceller in cancellers:
        canceller.start()
    for canceller in cancellers:
        canceller.join(10)
    assert all(job.status == jobs.STOPPED and manager.queue_position(job.job_id) is None for job in cancelled)
    remaining = [job for job in queued if job not in cancelled]
    assert [manager.queue_position(job.job_id) for job in remaining] == list(range(1, len(remaining) + 1))

    fake_train.release.set()
    for job in every:
        manager.wait(job.job_id, timeout=30)
    assert fake_train.started == [job.run_dir.name for job in [running_first, *remaining]]
    assert fake_train.most_at_once == 1
    for thread, thread_jobs in submitted.items():
        for n, job in enumerate(thread_jobs):
            if job in cancelled:
                assert job.status == jobs.STOPPED and job.error == "cancelled before it started"
            else:
                assert job.status == jobs.COMPLETED
                assert job.metrics == {"trained_on": f"data-{thread}", "epochs": n + 1}


def test_no_more_jobs_train_at_once_than_allowed_and_every_slot_is_used(make_manager, fake_train):
    manager = make_manager(3)
    every = [job for thread_jobs in submit_from_threads(manager, threads=4, per_thread=3).values()
             for job in thread_jobs]
    fake_train.wait_started(3)
    time.sleep(0.2)  # a fourth would start now if it could
    assert [job.status for job in every].count(jobs.RUNNING) == 3 and len(fake_train.started) == 3
    assert sorted(filter(None, map(manager.queue_position, [job.job_id for job in every]))) == list(range(1, 10))
    fake_train.release.set()
    for job in every:
        manager.wait(job.job_id, timeout=30)
    assert fake_train.most_at_once == 3 and all(job.status == jobs.COMPLETED for job in every)


def test_a_queued_job_keeps_the_settings_it_was_submitted_with(make_manager, fake_train, colours, tmp_path):
    manager = make_manager(1)
    blocker = manager.submit(fast_config(), colours)
    settings = fast_config(epochs=3)
    waiting = manager.submit(settings, colours)
    settings.epochs = 7  # the session goes on editing its settings for the next run
    assert waiting.config.epochs == 3 and waiting.config is not settings
    assert manager.job_for_run(waiting.run_dir) is waiting and manager.job_for_run(tmp_path / "other") is None
    fake_train.release.set()
    assert manager.wait(waiting.job_id, timeout=30).metrics["epochs"] == 3
    manager.wait(blocker.job_id, timeout=30)
