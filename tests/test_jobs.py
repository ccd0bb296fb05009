"""Background training jobs: queueing, stopping, failures, and a run folder per job.

The queue is tested with :class:`FakeTrain` standing in for training (injected with
``JobManager(trainer=..., processes=False)``: the queue logic is the same for thread and process
jobs); one slow test trains for real through the manager. Worker processes are tested in
``tests/test_worker_processes.py``.
"""

import threading
import types

import pytest

from tests.factories import fast_config
from tests.waiting import holds_for, wait_until
from tltools import jobs, runs
from tltools.errors import TLToolsError


class FakeTrain:
    """Stands in for :func:`tltools.training.train`: records the order, overlap and arguments of the jobs it runs.

    Every job holds its worker until :attr:`release` is set or the job is asked to stop;
    it then writes one epoch to the job's live log and returns, or raises :attr:`error` when set.
    """

    def __init__(self):
        self.release = threading.Event()
        self.error: Exception | None = None
        self.started: list[str] = []
        self.calls: list[dict] = []
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()

    def __call__(self, config, dataset, *, log, stop, from_run, run_dir):
        with self._lock:
            self.started.append(run_dir.name)
            self.calls.append(dict(config=config, dataset=dataset, log=log, stop=stop, from_run=from_run,
                                   run_dir=run_dir))
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            wait_until(lambda: self.release.is_set() or stop.requested, 60, "the test never released the jobs")
        finally:
            with self._lock:
                self._running -= 1
        if self.error is not None:
            raise self.error
        log.add_epoch({"epoch": 1, "loss": 0.5})
        return types.SimpleNamespace(metrics={"trained_on": dataset, "epochs": config.epochs})

    def wait_started(self, count: int) -> None:
        """Block until ``count`` jobs have started."""
        wait_until(lambda: len(self.started) >= count, 30, lambda: f"{len(self.started)} of {count} jobs started")


@pytest.fixture
def fake_train():
    """A fresh :class:`FakeTrain`."""
    return FakeTrain()


@pytest.fixture
def make_manager(fake_train, tmp_path):
    """Return ``make(max_concurrent)``: a job manager whose jobs run :class:`FakeTrain`, run folders in ``tmp_path``.

    Afterwards the jobs still queued are cancelled and the running ones let go.
    """
    managers = []

    def make(max_concurrent: int) -> jobs.JobManager:
        managers.append(jobs.JobManager(max_concurrent=max_concurrent, runs_root=tmp_path, trainer=fake_train,
                                        processes=False))
        return managers[-1]

    yield make
    for manager in managers:
        for job in manager.jobs():
            manager.stop(job.job_id)
    fake_train.release.set()
    for manager in managers:
        for job in manager.jobs():
            manager.wait(job.job_id, timeout=30)


def test_a_job_runs_in_the_background_with_its_own_run_folder_log_and_stop(make_manager, fake_train, tmp_path):
    manager = make_manager(1)
    job = manager.submit(fast_config(epochs=4), "data", owner="alice", from_run=str(tmp_path / "earlier"))
    fake_train.wait_started(1)
    assert job.status == jobs.RUNNING and not job.finished

    fake_train.release.set()
    assert manager.wait(job.job_id, timeout=30) is job
    assert job.status == jobs.COMPLETED and job.metrics == {"trained_on": "data", "epochs": 4}
    (call,) = fake_train.calls
    assert call["run_dir"] == job.run_dir and job.run_dir.parent == tmp_path and job.run_dir.name.endswith(job.job_id)
    assert call["log"] is job.log and job.log.snapshot()["epochs"], "the page reads the log the trainer writes"
    assert call["stop"] is job.stop_request and call["from_run"] == tmp_path / "earlier"
    assert job.dataset is None, "a finished job lets go of its dataset (so housekeeping may remove the upload)"


def test_jobs_queue_one_at_a_time_and_know_their_place(make_manager, fake_train):
    manager = make_manager(1)
    first = manager.submit(fast_config(epochs=2), "data", owner="alice")
    second = manager.submit(fast_config(epochs=1), "data", owner="bob")
    third = manager.submit(fast_config(epochs=1), "data", owner="bob")
    fake_train.wait_started(1)

    assert [manager.queue_position(job.job_id) for job in (first, second, third)] == [None, 1, 2]
    assert [job.status for job in (first, second, third)] == [jobs.RUNNING, jobs.QUEUED, jobs.QUEUED]
    assert [job.job_id for job in manager.jobs(owner="bob")] == [third.job_id, second.job_id]
    fake_train.release.set()
    for job in (first, second, third):
        manager.wait(job.job_id, timeout=30)
    assert [job.status for job in (first, second, third)] == [jobs.COMPLETED] * 3
    assert fake_train.started == [job.run_dir.name for job in (first, second, third)]
    assert len({first.run_dir, second.run_dir, third.run_dir}) == 3


def test_stopping_a_queued_job_cancels_it_without_a_run(make_manager, fake_train):
    manager = make_manager(1)
    running = manager.submit(fast_config(), "data")
    waiting = manager.submit(fast_config(), "data")
    fake_train.wait_started(1)
    manager.stop(waiting.job_id)
    assert waiting.status == jobs.STOPPED and "cancelled" in waiting.error
    assert manager.queue_position(waiting.job_id) is None

    fake_train.release.set()
    manager.wait(running.job_id, timeout=30)
    assert fake_train.started == [running.run_dir.name], "the cancelled job never started"
    assert not waiting.run_dir.exists()


def test_stopping_a_running_job_asks_its_trainer_to_stop_and_ends_stopped(make_manager, fake_train):
    manager = make_manager(1)
    job = manager.submit(fast_config(epochs=100), "data")
    fake_train.wait_started(1)
    manager.stop(job.job_id)  # FakeTrain returns once its stop request is set, as train does after a batch
    manager.wait(job.job_id, timeout=30)
    assert job.stop_request.requested and not fake_train.release.is_set()
    assert job.status == jobs.STOPPED and job.metrics == {"trained_on": "data", "epochs": 100}


@pytest.mark.parametrize(("error", "reported"), [(TLToolsError("block 99 is not a block of the base"), "block 99"),
                                                  (MemoryError(), "MemoryError")])
def test_a_failing_job_reports_the_reason_and_the_queue_goes_on(make_manager, fake_train, error, reported):
    manager = make_manager(1)
    fake_train.error = error
    failing = manager.submit(fast_config(), "data")
    fake_train.release.set()
    manager.wait(failing.job_id, timeout=30)
    assert failing.status == jobs.FAILED and reported in failing.error and failing.dataset is None

    fake_train.error = None
    after = manager.submit(fast_config(), "data")
    assert manager.wait(after.job_id, timeout=30).status == jobs.COMPLETED


def test_unknown_jobs_and_bad_settings_are_clear_errors(make_manager):
    manager = make_manager(1)
    assert manager.get("nope") is None
    with pytest.raises(TLToolsError, match="no training job"):
        manager.stop("nope")
    with pytest.raises(TLToolsError, match="no training job"):
        manager.wait("nope")
    with pytest.raises(TLToolsError, match="max_concurrent=0"):
        jobs.JobManager(max_concurrent=0)


def test_waiting_for_a_job_gives_up_after_its_timeout(make_manager, fake_train):
    manager = make_manager(1)
    job = manager.submit(fast_config(), "data")
    with pytest.raises(TLToolsError, match=f"{job.job_id} did not finish within 0.2 s"):
        manager.wait(job.job_id, timeout=0.2)


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
    holds_for(lambda: len(fake_train.started) == 3, 0.3, "a fourth job started while three were training")
    assert [job.status for job in every].count(jobs.RUNNING) == 3
    assert sorted(filter(None, map(manager.queue_position, [job.job_id for job in every]))) == list(range(1, 10))
    fake_train.release.set()
    for job in every:
        manager.wait(job.job_id, timeout=30)
    assert fake_train.most_at_once == 3 and all(job.status == jobs.COMPLETED for job in every)


def test_a_queued_job_keeps_the_settings_it_was_submitted_with(make_manager, fake_train, tmp_path):
    manager = make_manager(1)
    blocker = manager.submit(fast_config(), "data")
    settings = fast_config(epochs=3)
    waiting = manager.submit(settings, "data")
    settings.epochs = 7  # the session goes on editing its settings for the next run
    assert waiting.config.epochs == 3 and waiting.config is not settings
    assert manager.job_for_run(waiting.run_dir) is waiting and manager.job_for_run(tmp_path / "other") is None
    fake_train.release.set()
    assert manager.wait(waiting.job_id, timeout=30).metrics["epochs"] == 3
    manager.wait(blocker.job_id, timeout=30)


@pytest.mark.slow
def test_a_real_job_trains_into_its_run_folder_and_stopping_it_keeps_its_best_model(colours, tmp_path):
    manager = jobs.JobManager(max_concurrent=1, runs_root=tmp_path)
    job = manager.submit(fast_config(epochs=100), colours, owner="alice")
    wait_until(lambda: job.log.snapshot()["epochs"], 300, "no epoch was logged within 5 minutes")
    assert runs.read_run(job.run_dir).status == runs.RUNNING
    manager.stop(job.job_id)
    manager.wait(job.job_id, timeout=120)
    assert job.status == jobs.STOPPED and 1 <= job.metrics["epochs_run"] < 100
    assert runs.read_run(job.run_dir).status == runs.STOPPED
    assert (job.run_dir / runs.MODEL_FILE).is_file()


def test_stop_on_an_auto_job_reaches_the_search(monkeypatch, tmp_path):
    """The Train page's Stop on a "Find the best model" job ends the search: the job's stop request is run_auto's."""
    import tltools.auto

    seen = {}

    def fake_run_auto(dataset, **kwargs):
        seen.update(kwargs)
        run = types.SimpleNamespace(path=tmp_path / "run")
        return types.SimpleNamespace(chosen=types.SimpleNamespace(number=0), why="only trial",
                                     result=types.SimpleNamespace(metrics={"val": {"accuracy": 1.0}}), run=run,
                                     summary={})

    monkeypatch.setattr(tltools.auto, "run_auto", fake_run_auto)
    stop = jobs.StopRequest()
    jobs.auto_trainer(fast_config(), None, log=jobs.TrainingLog(), stop=stop, budget_s=30, runs_root=tmp_path)
    assert seen["stop"] is stop and seen["time_budget_s"] == 30


def test_a_task_other_than_training_runs_as_a_thread_job_with_its_options(make_manager):
    manager = make_manager(1)
    job = manager.submit(fast_config(), "data", task="tests.worker_trainers:echo_task", options={"word": "hi"})
    manager.wait(job.job_id, timeout=30)
    assert job.status == jobs.COMPLETED and job.summary == {"said": ["hi"]} and "hi" in job.log.snapshot()["messages"]


def test_a_task_that_cannot_be_imported_by_name_is_refused_when_submitted(make_manager):
    with pytest.raises(jobs.TLToolsError, match="cannot be imported by name"):
        make_manager(1).submit(fast_config(), "data", task="tests.worker_trainers:no_such_task")
