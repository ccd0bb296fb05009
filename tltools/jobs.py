"""Background training jobs: a queue and worker threads that outlive any one web page.

The app submits a :class:`~tltools.training.TrainConfig` and a dataset; a
worker thread runs :func:`tltools.training.train` while the page that started
it may rerun, switch, close or be refreshed. Pages read a job's
:class:`~tltools.training.TrainingLog` snapshot to draw live charts; nothing
here calls Streamlit. By default one job trains at a time (a CPU server is
saturated by one); later jobs wait in the queue and know their place in it.

Many sessions submit, stop and poll at once: the queue order, every job's
place in it and its status change together under one lock, so no job is ever
seen waiting without a place, started out of turn, or started after it was
cancelled.
"""

import copy
import dataclasses
import datetime
import queue
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tltools import paths
from tltools.data.dataset import Dataset
from tltools.errors import TLToolsError
from tltools.training import StopRequest, TrainConfig, TrainingLog, train

QUEUED, RUNNING, COMPLETED, STOPPED, FAILED = "queued", "running", "completed", "stopped", "failed"
FINISHED = (COMPLETED, STOPPED, FAILED)


@dataclasses.dataclass(eq=False)
class Job:
    """One training request and what became of it.

    Attributes:
        job_id: Short unique id (also the last part of the run folder's name).
        owner: Who submitted it (the app's session id), for listing one's own jobs.
        config: The run's settings.
        dataset: The data to train on; None once the job has finished, so that a
            finished job no longer keeps its extracted upload from being cleaned
            (:mod:`tltools.housekeeping`); the run folder records where it came from.
        run_dir: The run folder the job writes (known before it starts).
        from_run: A run whose model the job continues, or None.
        status: ``queued``, ``running``, ``completed``, ``stopped`` or ``failed``.
        error: The failure message, for failed jobs.
        metrics: The final metrics, once finished.
        log: Live progress (read with ``log.snapshot()``).
        stop_request: Cooperative stop shared with the training thread.
        submitted_at: When it was submitted.
        auto_budget_s: For an auto-mode job (:func:`tltools.auto.run_auto`), its time budget in
            seconds; None for a plain training job. An auto job's ``run_dir`` becomes the chosen
            run's folder when it ends; its trials appear in ``log.snapshot()["trials"]`` as they finish.
        auto: An auto job's summary (``auto.json``: the chosen trial, the one-line why, ...) once it ends.
    """

    job_id: str
    owner: str | None
    config: TrainConfig
    dataset: Dataset | None
    run_dir: Path
    from_run: Path | None = None
    status: str = QUEUED
    error: str | None = None
    metrics: dict | None = None
    log: TrainingLog = dataclasses.field(default_factory=TrainingLog)
    stop_request: StopRequest = dataclasses.field(default_factory=StopRequest)
    submitted_at: datetime.datetime = dataclasses.field(default_factory=datetime.datetime.now)
    auto_budget_s: float | None = None
    auto: dict | None = None

    @property
    def finished(self) -> bool:
        """True once the job completed, stopped or failed."""
        return self.status in FINISHED


class JobManager:
    """Runs training jobs on worker threads, ``max_concurrent`` at a time, the rest queued.

    Args:
        max_concurrent: Jobs that may train at once.
        runs_root: Folder for run folders; defaults to :func:`tltools.paths.runs_dir`
            at submission time.
        trainer: What runs a job: called as ``trainer(config, dataset, log=, stop=,
            from_run=, run_dir=)`` and returning an object with ``metrics``;
            defaults to :func:`tltools.training.train` (tests pass a stand-in to
            exercise the queue without training).

    Raises:
        TLToolsError: ``max_concurrent`` is below 1.
    """

    def __init__(self, max_concurrent: int = 1, runs_root: Path | None = None,
                 trainer: Callable[..., Any] = train):
        if max_concurrent < 1:
            raise TLToolsError(f"max_concurrent={max_concurrent} must be at least 1")
        self.max_concurrent = max_concurrent
        self.runs_root = runs_root
        self._trainer = trainer
        self._jobs: dict[str, Job] = {}
        self._waiting: list[str] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[str] = queue.Queue()
        self._workers = [
            threading.Thread(target=self._work, name=f"tltools-trainer-{n}", daemon=True)
            for n in range(max_concurrent)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, config: TrainConfig, dataset: Dataset, *, owner: str | None = None,
               from_run: Path | str | None = None, auto_budget_s: float | None = None) -> Job:
        """Queue a training job and return it at once.

        The job keeps its own copy of ``config``: changing the caller's object
        afterwards (the next run's settings) does not change a waiting job.

        Args:
            config: The run's settings (for auto mode, the plain settings it starts from).
            dataset: The data to train on.
            owner: Who submits it (the app's session id), or None.
            from_run: A run folder whose model the job continues, or None.
            auto_budget_s: Seconds for an auto-mode search (:func:`run_auto_job`) instead of one
                training run; None trains ``config`` as it is.

        Returns:
            The queued job, with its id and run folder already set.

        Raises:
            TLToolsError: The config is invalid.
        """
        config.validate()
        config = copy.deepcopy(config)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        with self._lock:
            job_id = self._new_job_id()
            run_dir = Path(self.runs_root or paths.runs_dir()) / f"{stamp}-{config.backbone}-{job_id}"
            job = Job(job_id, owner, config, dataset, run_dir, Path(from_run) if from_run else None,
                      auto_budget_s=auto_budget_s)
            self._jobs[job_id] = job
            self._waiting.append(job_id)
            self._queue.put(job_id)  # in the lock: the workers take jobs in the order of their places
        return job

    def _new_job_id(self) -> str:
        """Return an id no job of this manager has, so no two jobs share a run folder (call with the lock held)."""
        while (job_id := secrets.token_hex(4)) in self._jobs:
            pass
        return job_id

    def get(self, job_id: str | None) -> Job | None:
        """Return the job with that id, or None (unknown ids, e.g. from before a restart)."""
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Return the jobs (of ``owner`` when given), newest first."""
        with self._lock:
            found = [job for job in self._jobs.values() if owner is None or job.owner == owner]
        return sorted(found, key=lambda job: job.submitted_at, reverse=True)

    def job_for_run(self, run_dir: Path | str) -> Job | None:
        """Return the job writing (or that wrote) the run folder ``run_dir``, or None (e.g. a CLI run)."""
        name = Path(run_dir).name
        with self._lock:
            return next((job for job in self._jobs.values() if job.run_dir.name == name), None)

    def queue_position(self, job_id: str) -> int | None:
        """Return 1 for the next job to start, 2 for the one after, ...; None when not waiting."""
        with self._lock:
            return self._waiting.index(job_id) + 1 if job_id in self._waiting else None

    def stop(self, job_id: str) -> None:
        """Stop a running job after its current batch (keeping its best model), or cancel a queued one.

        A cancelled job leaves the queue at once (the jobs behind it move up)
        and never starts; it ends ``stopped`` without a run folder.

        Raises:
            TLToolsError: There is no job with that id.
        """
        job = self.get(job_id)
        if job is None:
            raise TLToolsError(f"no training job {job_id!r}; it may have ended before the server restarted")
        with self._lock:  # the same lock a worker takes to start it: either it never starts, or it stops
            job.stop_request.stop()
            if job_id in self._waiting:
                self._waiting.remove(job_id)
                job.error = "cancelled before it started"
                job.status = STOPPED
                job.dataset = None

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job has finished (for scripts and tests); return it.

        Raises:
            TLToolsError: The job is unknown or did not finish within ``timeout`` seconds.
        """
        job = self.get(job_id)
        if job is None:
            raise TLToolsError(f"no training job {job_id!r}")
        deadline = None if timeout is None else datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        while not job.finished:
            if deadline and datetime.datetime.now() > deadline:
                raise TLToolsError(f"training job {job_id} did not finish within {timeout} s")
            threading.Event().wait(0.1)
        return job

    def _work(self) -> None:
        while True:
            job = self.get(self._queue.get())
            with self._lock:
                if job.job_id not in self._waiting:  # cancelled while it waited
                    continue
                self._waiting.remove(job.job_id)
                job.status = RUNNING
            try:
                if job.auto_budget_s is not None:
                    result = run_auto_job(job, runs_root=Path(self.runs_root or paths.runs_dir()))
                else:
                    result = self._trainer(job.config, job.dataset, log=job.log, stop=job.stop_request,
                                           from_run=job.from_run, run_dir=job.run_dir)
            except Exception as error:  # the run folder records it too; the page shows it
                job.error = str(error) or type(error).__name__
                job.status = FAILED
            else:
                job.metrics = result.metrics
                job.status = STOPPED if job.stop_request.requested else COMPLETED
            finally:
                job.dataset = None


def run_auto_job(job: Job, *, runs_root: Path):
    """Run an auto-mode job: :func:`tltools.auto.run_auto` within ``job.auto_budget_s``, trials into the job's log.

    Each finished trial is appended to ``job.log`` (its ``trials.csv`` row), each step becomes a
    log message, and the progress fields say how much of the budget is used. When it ends,
    ``job.run_dir`` is the chosen run's folder and ``job.auto`` its ``auto.json`` summary.

    Returns:
        The final run's :class:`tltools.training.TrainResult`.

    Raises:
        TLToolsError: What :func:`tltools.auto.run_auto` raises (unusable data, a budget too small).
    """
    from tltools.auto import run_auto

    budget = float(job.auto_budget_s)
    job.log.update(phase=1, phase_name=f"auto mode: finding the best model within {budget:.0f} s",
                   auto_budget_s=budget)
    job.log.add_message(f"Auto mode: searching backbones and head settings within {budget:.0f} s.")
    outcome = run_auto(job.dataset, time_budget_s=budget, base_config=job.config, runs_root=runs_root,
                       on_trial=lambda record: job.log.add_trial(record.row()), log=job.log.add_message)
    job.run_dir = outcome.run.path
    job.auto = dict(outcome.summary)
    job.log.update(phase_name="completed")
    job.log.add_message(f"Auto mode chose trial {outcome.chosen.number}: {outcome.why}")
    return outcome.result
