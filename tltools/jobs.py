"""Background training jobs: a queue, and for each job a process of its own that outlives any web page.

The app submits a :class:`~tltools.training.TrainConfig` and a dataset; the job
manager starts a worker process (:mod:`tltools.worker`) that runs
:func:`tltools.training.train` while the page that started it may rerun,
switch, close or be refreshed. The worker reports through files in the job's
folder ``<runs>/.jobs/<id>/`` (an append-only ``events.jsonl``, a ``stop``
request, its ``result.json``); the manager tails them into the job's
:class:`~tltools.training.TrainingLog`, whose snapshot the pages draw. A
worker that crashes, is killed by the OS or by a signal ends its job
``failed`` with the reason and its run ``interrupted`` with its last
checkpoint; the server and every other job keep running. The queue is on disk
too: jobs still queued when a server stops start when one comes back, and a
restarted server reattaches to workers still running. Nothing here calls
Streamlit.

With ``TLTOOLS_RAY_ADDRESS`` set, each job runs as a Ray task on a node of that cluster instead
(:mod:`tltools.ray_executor`): the same job folder is the channel, so the run, uploads and caches
must be on storage every node sees, which the first job checks. Each job records where it runs
(``Job.where``: a local pid or a Ray node), and the Train page shows it.

By default one job trains at a time (``TLTOOLS_MAX_CONCURRENT_JOBS``: worker
processes at once); later jobs wait in the queue and know their place in it.
One worker process is kept warm (TensorFlow imported, the last job's model built ahead) so that a job
starts at once; it is started when a job ends, not while one runs (its warm-up would slow the job on a
small machine). Each process runs one job and exits. ``JobManager(processes=False)`` runs
jobs on threads of this process instead (tests with stand-in trainers).

Many sessions submit, stop and poll at once: the queue order, every job's
place in it and its status change together under one lock, so no job is ever
seen waiting without a place, started out of turn, or started after it was
cancelled.
"""

import atexit
import copy
import dataclasses
import datetime
import os
import pickle
import queue
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tltools import paths, ray_executor, runs, worker
from tltools.data.dataset import Dataset
from tltools.errors import TLToolsError
from tltools.settings import Settings
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
        task: What runs the job, by name (``"module:function"``, called like a trainer with ``options``
            as keyword arguments), or None for the manager's trainer. Long tasks other than training
            (auto mode, the LR finder, data health, distillation, adaptation) are jobs this way.
        options: The task's keyword arguments (JSON-able values and paths).
        summary: What the task returned besides its metrics (its outcome's ``summary``), once it ends.
        pid: The process running it (a worker process; this one for ``processes=False``), once started.
        folder: The job's folder ``<runs>/.jobs/<id>/`` (see :mod:`tltools.worker`); None for thread jobs.
        where: Where it runs, in words: ``local process pid N``, ``Ray node … on HOST, pid N``, or a thread
            of the server; None while it waits.
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
    task: str | None = None
    options: dict = dataclasses.field(default_factory=dict)
    summary: dict | None = None
    pid: int | None = None
    folder: Path | None = None
    where: str | None = None

    @property
    def finished(self) -> bool:
        """True once the job completed, stopped or failed."""
        return self.status in FINISHED


# Finished jobs kept in memory; older ones are read back from their job folder when asked for.
KEEP_FINISHED = 50
JOBS_FOLDER = ".jobs"
# Lines of a crashed worker's output quoted in its job's error.
OUTPUT_LINES = 6
POLL_S = 0.2
# A job on another machine whose heartbeat has not changed for this long is taken for dead.
HEARTBEAT_TIMEOUT_S = 60.0
AUTO_TRAINER = "tltools.jobs:auto_trainer"


class JobManager:
    """Runs training jobs, ``max_concurrent`` at a time, each in a worker process; the rest wait in a queue on disk.

    Args:
        max_concurrent: Jobs that may train at once (worker processes).
        runs_root: Folder for run folders (and the job folders in its ``.jobs/``); defaults to
            :func:`tltools.paths.runs_dir`.
        trainer: What runs a job: called as ``trainer(config, dataset, log=, stop=,
            from_run=, run_dir=)`` and returning an object with ``metrics``;
            defaults to :func:`tltools.training.train`. With processes it must be importable
            by name in the worker (a top-level function or a ``"module:function"`` string);
            tests pass a stand-in to exercise the queue without training.
        processes: Run each job in its own worker process (True, what the app does) or on a
            thread of this process (False: any callable trainer, no isolation, no disk queue).
            None reads ``TLTOOLS_JOB_PROCESSES`` (1, the default, or 0).
        warm: With processes, keep one worker process ready with TensorFlow imported, so a job
            starts without waiting for the import.
        ray_address: With processes, run each job as a task on this Ray cluster (:mod:`tltools.ray_executor`)
            instead of a local worker process (no warm worker then); None reads ``TLTOOLS_RAY_ADDRESS``
            (unset: local processes), ``""`` means local processes whatever the variable says.

    Raises:
        TLToolsError: ``max_concurrent`` is below 1, the trainer cannot be imported by a worker, or a
            Ray address is set but Ray is not installed.
    """

    def __init__(self, max_concurrent: int = 1, runs_root: Path | None = None,
                 trainer: Callable[..., Any] | str = train, processes: bool | None = None, warm: bool = True,
                 ray_address: str | None = None):
        if max_concurrent < 1:
            raise TLToolsError(f"max_concurrent={max_concurrent} must be at least 1")
        self.max_concurrent = max_concurrent
        self.runs_root = runs_root
        settings = Settings.from_env()
        self.processes = bool(settings.job_processes if processes is None else processes)
        address = settings.ray_address if ray_address is None else ray_address
        self._ray = (ray_executor.RayExecutor(address, settings.ray_cpus, settings.ray_gpus)
                     if self.processes and address else None)
        warm = warm and self._ray is None
        self._trainer = trainer
        self._trainer_name = worker.trainer_name(trainer) if self.processes else None
        if not self.processes and isinstance(trainer, str):
            self._trainer = worker.resolve(trainer)
        self.warm = warm and self.processes
        self._jobs: dict[str, Job] = {}
        self._waiting: list[str] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[str] = queue.Queue()
        self._warm_worker: subprocess.Popen | None = None
        self._heartbeats: dict[str, tuple[str | None, float]] = {}
        self._warm_lock = threading.Lock()
        self._closed = False
        if self.processes:
            self._recover()
            if self.warm:
                self._spawn_warm()
            atexit.register(self.close)
        self._workers = [
            threading.Thread(target=self._work, name=f"tltools-trainer-{n}", daemon=True)
            for n in range(max_concurrent)
        ]
        for worker_thread in self._workers:
            worker_thread.start()

    def _root(self) -> Path:
        return Path(self.runs_root or paths.runs_dir()).absolute()

    def submit(self, config: TrainConfig, dataset: Dataset, *, owner: str | None = None,
               from_run: Path | str | None = None, auto_budget_s: float | None = None,
               task: str | None = None, options: dict | None = None) -> Job:
        """Queue a training job and return it at once.

        The job keeps its own copy of ``config``: changing the caller's object
        afterwards (the next run's settings) does not change a waiting job. With
        processes the job is written to its folder first, so it survives a server restart.

        Args:
            config: The run's settings (for auto mode, the plain settings it starts from).
            dataset: The data to train on.
            owner: Who submits it (the app's session id), or None.
            from_run: A run folder whose model the job continues, or None.
            auto_budget_s: Seconds for an auto-mode search (:func:`auto_trainer`) instead of one
                training run; None trains ``config`` as it is.
            task: Run this task (``"module:function"``, called as ``task(config, dataset, log=, stop=,
                from_run=, run_dir=, **options)`` and returning an object with ``metrics`` and optionally
                ``run_dir`` and ``summary``) instead of the manager's trainer; None for the trainer.
            options: Keyword arguments for ``task``.

        Returns:
            The queued job, with its id and run folder already set.

        Raises:
            TLToolsError: The config is invalid, ``task`` cannot be imported by name, or the job
                folder cannot be written.
        """
        config.validate()
        if auto_budget_s is not None:
            task, options = AUTO_TRAINER, {"budget_s": float(auto_budget_s), "runs_root": str(self._root())}
        if task is not None:
            worker.trainer_name(task)
        if self._ray is not None:  # once per folder: every node must see the server's folders
            self._ray.check_storage({"TLTOOLS_HOME": paths.home_dir(), "TLTOOLS_CACHE": paths.cache_dir(),
                                     "the runs folder": self._root()})
        config = copy.deepcopy(config)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        with self._lock:
            root = self._root()
            job_id = self._new_job_id(root)
            run_dir = root / f"{stamp}-{config.backbone}-{job_id}"
            job = Job(job_id, owner, config, dataset, run_dir, Path(from_run) if from_run else None,
                      auto_budget_s=auto_budget_s, task=task, options=dict(options or {}))
            if self.processes:
                job.folder = root / JOBS_FOLDER / job_id
                self._persist(job, root)
            self._jobs[job_id] = job
            self._waiting.append(job_id)
            self._queue.put(job_id)  # in the lock: the workers take jobs in the order of their places
        return job

    def _new_job_id(self, root: Path) -> str:
        """Return an id no job of this manager (or on disk) has, so no two jobs share a run folder (lock held)."""
        while (job_id := secrets.token_hex(4)) in self._jobs or (root / JOBS_FOLDER / job_id).exists():
            pass
        return job_id

    def _persist(self, job: Job, root: Path) -> None:
        """Write a new job's folder: ``job.pkl`` (what the worker needs), ``job.json`` and ``state.json`` (queued)."""
        spec = {"trainer": job.task or self._trainer_name, "config": job.config,
                "dataset": job.dataset, "from_run": job.from_run, "run_dir": job.run_dir,
                "options": job.options}
        try:
            job.folder.mkdir(parents=True)
            temporary = job.folder / f".{worker.JOB_FILE}.tmp"
            temporary.write_bytes(pickle.dumps(spec))
            os.replace(temporary, job.folder / worker.JOB_FILE)
            worker.write_json(job.folder / worker.JOB_META, {
                "job_id": job.job_id, "owner": job.owner, "config": job.config.to_dict(),
                "run_dir": str(job.run_dir), "from_run": str(job.from_run) if job.from_run else None,
                "submitted_at": job.submitted_at.isoformat(), "auto_budget_s": job.auto_budget_s,
                "task": job.task, "options": job.options})
            worker.write_json(job.folder / worker.STATE_FILE, {"status": QUEUED})
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as error:
            raise TLToolsError(f"could not queue the job in {job.folder}: {error}; check that the runs folder "
                               f"is writable and has space") from error

    def get(self, job_id: str | None) -> Job | None:
        """Return the job with that id, or None (unknown ids).

        With processes a job not in memory (finished long ago, or submitted by another server on the
        same folders) is read back from its job folder; a running one is followed live from then on.
        """
        if not job_id:
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None or not self.processes or not worker.valid_id(job_id):
            return job
        folder = self._root() / JOBS_FOLDER / job_id
        if not (folder / worker.JOB_META).is_file():
            return None
        with self._lock:
            if job_id in self._jobs:
                return self._jobs[job_id]
            job = self._load(folder)
        if job is None:
            return None
        if job.finished:
            with self._lock:
                job = self._jobs.setdefault(job_id, job)
        else:
            self._adopt(job)
        return job

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Return the jobs in memory (of ``owner`` when given), newest first."""
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
        and never starts; it ends ``stopped`` without a run folder. A running worker
        process is asked through a ``stop`` file in the job's folder.

        Raises:
            TLToolsError: There is no job with that id.
        """
        job = self.get(job_id)
        if job is None:
            raise TLToolsError(f"no training job {job_id!r}; it may have ended before the server restarted")
        with self._lock:  # the same lock a worker takes to start it: either it never starts, or it stops
            job.stop_request.stop()
            if job.folder is not None and job.status == RUNNING:
                _touch(job.folder / worker.STOP_FILE)
            if job_id in self._waiting:
                self._waiting.remove(job_id)
                job.error = "cancelled before it started"
                job.status = STOPPED
                job.dataset = None
                if job.folder is not None:
                    self._record_end(job, {"status": STOPPED, "error": job.error})

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

    def close(self) -> None:
        """Let the warm worker go (running jobs go on: their workers finish on their own). Idempotent."""
        self._closed = True
        with self._warm_lock:
            warm, self._warm_worker = self._warm_worker, None
        if warm is not None and warm.poll() is None:
            warm.kill()
            warm.wait(10)

    def wait_warm(self, timeout: float = 300) -> bool:
        """Block until the warm worker has imported TensorFlow (benchmarks measure a job from there).

        A warm worker starts when a job ends: right after :meth:`wait` returns it may not have been
        started yet, so this first waits (within ``timeout``) for one to appear.

        Returns:
            True when a warm worker is ready; False without one (``warm=False``, closed), or when it was not
            ready in ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._warm_lock:
                warm = self._warm_worker
            if warm is not None or not self.warm or self._closed or time.monotonic() > deadline:
                break
            threading.Event().wait(0.05)
        if warm is None or warm.poll() is not None:
            return False
        timeout = max(deadline - time.monotonic(), 0)
        if getattr(warm, "tltools_ready", False):
            return True
        ready, _, _ = select.select([warm.stdout], [], [], timeout)
        warm.tltools_ready = bool(ready) and warm.stdout.readline().strip() == b"ready"
        return warm.tltools_ready

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job_id not in self._waiting:  # cancelled while it waited
                    continue
                self._waiting.remove(job_id)
                job.status = RUNNING
            if self.processes:
                self._run_process(job)
            else:
                self._run_thread(job)
            self._prune()

    def _run_thread(self, job: Job) -> None:
        """Run ``job`` on this thread with the trainer object itself (``processes=False``)."""
        job.pid = os.getpid()
        job.where = f"a thread of the server's process (pid {job.pid})"
        try:
            run = worker.resolve(job.task) if job.task else self._trainer
            result = run(job.config, job.dataset, log=job.log, stop=job.stop_request,
                         from_run=job.from_run, run_dir=job.run_dir, **job.options)
            if getattr(result, "run_dir", None):
                job.run_dir = Path(result.run_dir)
            job.auto, job.summary = getattr(result, "auto", None), getattr(result, "summary", None)
        except Exception as error:  # the run folder records it too; the page shows it
            job.error = str(error) or type(error).__name__
            job.status = FAILED
        else:
            job.metrics = result.metrics
            job.status = STOPPED if job.stop_request.requested else COMPLETED
        finally:
            job.dataset = None

    def _run_process(self, job: Job) -> None:
        """Start ``job``'s worker process (the warm one when ready), follow it to its end and record the outcome."""
        try:
            claim = os.open(job.folder / worker.CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another server on the same folders started it: watch it instead
            self._follow(job, None)
            return
        except OSError as error:
            self._end(job, {"status": FAILED, "error": f"could not start the job in {job.folder}: {error}"})
            return
        os.write(claim, str(os.getpid()).encode())
        os.close(claim)
        if self._ray is not None:
            try:
                task = self._ray.submit(job.folder)
            except Exception as error:  # noqa: BLE001 - a lost connection, a refused submission
                self._end(job, {"status": FAILED, "error": f"could not submit the job to the Ray cluster: {error}"})
                return
            job.where = f"Ray cluster {self._ray.address}: waiting for a node with {self._ray.num_cpus:g} CPU"
            self._follow(job, task)
            return
        try:
            process = self._start_worker(job.folder)
        except OSError as error:
            self._end(job, {"status": FAILED, "error": f"could not start a worker process: {error}"})
            return
        job.pid = process.pid
        job.where = f"local process pid {process.pid}"
        ahead = _prebuild_spec(job)
        self._follow(job, process)
        if self.warm and not self._closed:  # now, not while the job ran: a warm-up would have slowed it
            with self._warm_lock:
                warm = self._warm_worker
            if warm is None or warm.poll() is not None:
                self._spawn_warm(ahead)

    def _start_worker(self, folder: Path) -> subprocess.Popen:
        """Hand ``folder`` to the warm worker, or start a fresh one; then warm up the next."""
        with self._warm_lock:
            warm, self._warm_worker = self._warm_worker, None
        process = None
        if warm is not None and warm.poll() is None:
            try:
                warm.stdin.write(f"{folder}\n".encode())
                warm.stdin.close()
                process = warm
            except OSError:
                warm.kill()
        if process is None:
            with open(folder / worker.LOG_FILE, "ab") as output:
                process = subprocess.Popen([sys.executable, "-m", "tltools.worker", str(folder)],
                                           stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                           env=_worker_env())
        return process

    def _spawn_warm(self, prebuild: dict | None = None) -> None:
        """Start a worker process that imports TensorFlow and the trainer, then waits for a job folder.

        With ``prebuild`` (see :func:`_prebuild_spec`) it also builds that model ahead.
        """
        extra = ["--prebuild", worker.to_json(prebuild)] if prebuild else []
        try:
            process = subprocess.Popen([sys.executable, "-m", "tltools.worker", "--warm", *extra],
                                       stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_worker_env())
        except OSError:  # no process to spare now: the next job starts a fresh worker (slower, not broken)
            return
        with self._warm_lock:
            previous, self._warm_worker = self._warm_worker, process
        if previous is not None and previous.poll() is None:
            previous.kill()
            previous.wait(10)

    def _follow(self, job: Job, process: "subprocess.Popen | ray_executor.RayTask | None") -> None:
        """Tail the job's events into its log and pass on a stop request until its worker ends; record the outcome.

        ``process`` is the worker process or Ray task this manager started, or None for one started by an
        earlier or another server (followed by the pid in ``state.json``).
        """
        folder = job.folder
        tail = worker.EventTail(folder / worker.EVENTS_FILE, job.log)
        stop_sent = placed = False
        while self._worker_alive(job, process):
            tail.poll()
            if not placed:  # the worker says where it runs (a Ray task's node) once it has started
                state = worker.read_json(folder / worker.STATE_FILE) or {}
                if state.get("where"):
                    job.where, job.pid, placed = state["where"], state.get("pid", job.pid), True
            if job.stop_request.requested and not stop_sent:
                _touch(folder / worker.STOP_FILE)
                stop_sent = True
            threading.Event().wait(POLL_S)
        tail.poll()
        result = worker.read_json(folder / worker.RESULT_FILE)
        self._end(job, result if result is not None else self._crash(job, process))

    def _worker_alive(self, job: Job, process: "subprocess.Popen | ray_executor.RayTask | None") -> bool:
        if (job.folder / worker.RESULT_FILE).exists():  # done, even while the process is still exiting
            if isinstance(process, subprocess.Popen):
                threading.Thread(target=process.wait, name="tltools-reap", daemon=True).start()
            return False
        if isinstance(process, ray_executor.RayTask):
            return process.running()
        if process is not None:
            return process.poll() is None
        state = worker.read_json(job.folder / worker.STATE_FILE) or {}
        if state.get("host") not in (None, socket.gethostname()):  # a Ray task on another node, started earlier
            return self._beating(job)
        if state.get("pid"):
            job.pid = state["pid"]
            return runs.pid_alive(state["pid"])
        claim = job.folder / worker.CLAIM_FILE
        try:  # claimed but not started yet: alive while the server that claimed it is
            return runs.pid_alive(int(claim.read_text() or 0))
        except (OSError, ValueError):
            return False

    def _beating(self, job: Job) -> bool:
        """Whether the job's ``heartbeat`` count changed within :data:`HEARTBEAT_TIMEOUT_S` (by this server's clock)."""
        try:
            beat = (job.folder / worker.HEARTBEAT_FILE).read_text()
        except OSError:
            beat = None
        now = time.monotonic()
        last = self._heartbeats.get(job.job_id)
        if last is None or last[0] != beat:
            self._heartbeats[job.job_id] = last = (beat, now)
        return now - last[1] < HEARTBEAT_TIMEOUT_S

    def _crash(self, job: Job, process: "subprocess.Popen | ray_executor.RayTask | None") -> dict:
        """The outcome of a worker that ended without a result: its exit status, signal or Ray error, and last output.

        The run folder (when the worker had made one) is marked ``interrupted`` with that reason
        when this manager saw the worker end; its last checkpoint stays.
        """
        code = process.returncode if isinstance(process, subprocess.Popen) else None
        if isinstance(process, ray_executor.RayTask):
            how = f"failed on the Ray cluster ({process.failure() or 'it ended without a result'})"
        elif code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by {name}" + (" (out of memory, or killed by hand)" if name == "SIGKILL" else "")
        elif code is not None:
            how = f"exited with code {code}"
        else:
            how = "ended while no server watched it"
        if isinstance(process, ray_executor.RayTask):
            who = f"the job's Ray task ({job.where})"
        elif process is None and (job.where or "").startswith("Ray"):
            who, how = f"the job's Ray task ({job.where})", "stopped beating while no server watched it"
        else:
            who = f"the worker process (pid {job.pid})"
        reason = f"{who} {how} before the job finished"
        lines = _last_lines(job.folder / worker.LOG_FILE, OUTPUT_LINES)
        if lines:
            reason += "; its last output: " + " | ".join(lines)
        if process is not None and (job.run_dir / "status.json").is_file():  # else runs.read_run says it
            try:
                if runs.read_run(job.run_dir).status in (runs.RUNNING, runs.INTERRUPTED):
                    runs.RunWriter(job.run_dir).set_status(runs.INTERRUPTED, error=reason)
            except (TLToolsError, OSError, ValueError, KeyError):
                pass  # the job's own error still says what happened
        return {"status": FAILED, "error": reason}

    def _end(self, job: Job, result: dict) -> None:
        """Record a worker's ``result`` on ``job`` (and in its folder); the status changes last."""
        job.metrics = result.get("metrics")
        job.error = result.get("error")
        if result.get("run_dir"):
            job.run_dir = Path(result["run_dir"])
        job.auto = result.get("auto")
        job.summary = result.get("summary")
        job.dataset = None
        with self._lock:
            self._record_end(job, result)
            job.status = result.get("status", FAILED)

    def _record_end(self, job: Job, result: dict) -> None:
        """Write the outcome to ``state.json`` and drop ``job.pkl`` (the dataset is no longer needed)."""
        try:
            worker.write_json(job.folder / worker.STATE_FILE, {
                "status": result.get("status", FAILED), "error": job.error, "metrics": job.metrics,
                "run_dir": str(job.run_dir), "auto": job.auto, "summary": job.summary, "pid": job.pid,
                "where": job.where, "finished_at": datetime.datetime.now().isoformat(timespec="seconds")})
            (job.folder / worker.JOB_FILE).unlink(missing_ok=True)
        except OSError:
            pass  # the job in memory has its outcome; only a later server would miss it

    def _load(self, folder: Path) -> Job | None:
        """Read a job back from its folder (call with the lock held); None when it is unreadable."""
        meta = worker.read_json(folder / worker.JOB_META)
        state = worker.read_json(folder / worker.STATE_FILE) or {}
        try:
            job = Job(meta["job_id"], meta.get("owner"), TrainConfig.from_dict(meta["config"]), None,
                      Path(meta["run_dir"]), Path(meta["from_run"]) if meta.get("from_run") else None,
                      submitted_at=datetime.datetime.fromisoformat(meta["submitted_at"]),
                      auto_budget_s=meta.get("auto_budget_s"), task=meta.get("task"),
                      options=meta.get("options") or {})
        except (TypeError, KeyError, ValueError, TLToolsError):
            return None
        job.folder = folder
        job.pid, job.where = state.get("pid"), state.get("where")
        status = state.get("status", QUEUED)
        if status in FINISHED:
            job.error, job.metrics, job.auto = state.get("error"), state.get("metrics"), state.get("auto")
            job.summary = state.get("summary")
            job.run_dir = Path(state.get("run_dir") or job.run_dir)
            worker.EventTail(folder / worker.EVENTS_FILE, job.log).poll()
        job.status = status if status in (QUEUED, *FINISHED) else RUNNING
        return job

    def _follow_elsewhere(self, job: Job) -> None:
        """Follow a job this manager did not start (started by an earlier or another server) on a thread."""
        threading.Thread(target=self._follow, args=(job, None), name=f"tltools-follow-{job.job_id}",
                         daemon=True).start()

    def _recover(self) -> None:
        """Pick up the job folders on disk: queue the jobs still queued (oldest first), follow the running ones."""
        folder_root = self._root() / JOBS_FOLDER
        if not folder_root.is_dir():
            return
        found = []
        for folder in folder_root.iterdir():
            state = worker.read_json(folder / worker.STATE_FILE) or {}
            if state.get("status") not in (QUEUED, RUNNING):
                continue
            with self._lock:
                job = self._load(folder)
            if job is not None:
                found.append(job)
        for job in sorted(found, key=lambda job: job.submitted_at):
            self._adopt(job)

    def _adopt(self, job: Job) -> None:
        """Take on an unfinished job read from its folder: queue it when no one has started it, else follow it."""
        with self._lock:
            if job.job_id in self._jobs:
                return
            self._jobs[job.job_id] = job
            if job.status == QUEUED and not (job.folder / worker.CLAIM_FILE).exists():
                try:
                    job.dataset = pickle.loads((job.folder / worker.JOB_FILE).read_bytes())["dataset"]
                except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError) as error:
                    job.error = f"the queued job could not be read back: {error}"
                    self._record_end(job, {"status": FAILED})
                    job.status = FAILED
                    return
                self._waiting.append(job.job_id)  # the claim file decides which server starts it
                self._queue.put(job.job_id)
                return
            job.status = RUNNING
        self._follow_elsewhere(job)

    def _prune(self) -> None:
        """Keep only the newest :data:`KEEP_FINISHED` finished jobs in memory (with processes they stay on disk)."""
        if not self.processes:
            return
        with self._lock:
            finished = sorted((job for job in self._jobs.values() if job.finished), key=lambda job: job.submitted_at)
            for job in finished[:-KEEP_FINISHED]:
                del self._jobs[job.job_id]


def _prebuild_spec(job: Job) -> dict | None:
    """The model ``job`` builds (the arguments of :func:`tltools.model.builder.prebuild`), for the next warm worker
    to build ahead: a plain training run or an LR finder sweep from scratch; None for anything else."""
    classes = getattr(job.dataset, "classes", None)
    if job.task not in (None, LR_FINDER_TASK) or job.from_run is not None or not classes:
        return None
    config = job.config
    return {"backbone": config.backbone, "classes": len(classes), "weights": config.weights,
            "input_size": config.image_size, "pooling": config.pooling, "dense_units": config.dense_units,
            "dropout": config.dropout, "seed": config.seed}


def _touch(path: Path) -> None:
    try:
        path.touch()
    except OSError:
        pass


def _last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` non-empty lines of a text file (empty when it is missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()][-count:]


def _worker_env() -> dict:
    """This process's environment, with its import path, so a worker imports the same modules (and trainers)."""
    env = dict(os.environ)
    here = [os.path.abspath(entry or ".") for entry in sys.path if os.path.isdir(entry or ".")]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(here))
    return env


def auto_trainer(config: TrainConfig, dataset: Dataset, *, log: TrainingLog, stop: StopRequest,
                 from_run: Path | None = None, run_dir: Path | None = None, budget_s: float,
                 runs_root: Path | str):
    """Run auto mode as a job: :func:`tltools.auto.run_auto` within ``budget_s``, trials into ``log``.

    Each finished trial is appended to ``log`` (its ``trials.csv`` row), each step becomes a
    log message, and the progress fields say how much of the budget is used. Called like a
    trainer (``from_run`` and ``run_dir`` are not used: auto mode names its own runs); ``stop`` ends the
    search after the current trial and trains the best trial so far.

    Returns:
        An object with ``metrics`` (the chosen run's), ``run_dir`` (its folder) and ``auto`` (``auto.json``).

    Raises:
        TLToolsError: What :func:`tltools.auto.run_auto` raises (unusable data, a budget too small).
    """
    from tltools.auto import run_auto

    budget = float(budget_s)
    log.update(phase=1, phase_name=f"auto mode: finding the best model within {budget:.0f} s", auto_budget_s=budget)
    log.add_message(f"Auto mode: searching backbones and head settings within {budget:.0f} s.")
    outcome = run_auto(dataset, time_budget_s=budget, base_config=config, runs_root=Path(runs_root),
                       on_trial=lambda record: log.add_trial(record.row()), log=log.add_message, stop=stop)
    log.update(phase_name="completed")
    log.add_message(f"Auto mode chose trial {outcome.chosen.number}: {outcome.why}")
    return types.SimpleNamespace(metrics=outcome.result.metrics, run_dir=outcome.run.path,
                                 auto=dict(outcome.summary))


LR_FINDER_TASK = "tltools.jobs:lr_finder_task"


def lr_finder_task(config: TrainConfig, dataset: Dataset, *, log: TrainingLog, stop: StopRequest,
                   from_run: Path | None = None, run_dir: Path | None = None, steps: int = 100, phase: int = 1):
    """Run the learning-rate finder as a job: :func:`tltools.training.suggest_learning_rate` on ``config``.

    Called like a trainer (``from_run`` and ``run_dir`` are not used: the sweep makes no run; ``stop``
    cannot cut a sweep of a few seconds short).

    Args:
        steps: Most batches in the sweep.
        phase: 1 sweeps the head on the frozen base, 2 the fine-tuning phase.

    Returns:
        An object with empty ``metrics`` and ``summary``: the result's :meth:`~tltools.training.lr_finder.LRFinderResult.to_dict`.

    Raises:
        TLToolsError: What :func:`tltools.training.suggest_learning_rate` raises (unusable settings or data).
    """
    from tltools.training import suggest_learning_rate

    log.update(phase=phase, phase_name="sweeping the learning rate")
    log.add_message(f"Learning-rate finder: {steps} batches, the learning rate growing from 1e-7 to 1.")
    found = suggest_learning_rate(config, dataset, phase=int(phase), steps=int(steps))
    log.update(phase_name="completed")
    return types.SimpleNamespace(metrics={}, summary=found.to_dict())
