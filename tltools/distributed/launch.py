"""Launching a data-parallel run: the strategy, Ray and Ray Train's ``TensorflowTrainer``.

:func:`train` is what :func:`tltools.training.train` hands a run with ``workers`` > 1
(or several visible GPUs). With one worker it trains here under ``MirroredStrategy``.
With N workers it connects to the Ray cluster ``TLTOOLS_RAY_ADDRESS`` names, or starts
a local Ray for the run (bound to 127.0.0.1, ``num_cpus=N``, no dashboard) and shuts it
down afterwards, and runs :func:`worker_loop` on N Ray Train workers; each builds
``MultiWorkerMirroredStrategy`` from the ``TF_CONFIG`` Ray wrote and trains the run
through :func:`tltools.training.trainer.run_into`, the chief (rank 0) into the run
folder, the others into a scratch folder they delete. A small Ray actor (the relay)
carries the chief's live log to this process and a stop request to the workers.
``FailureConfig(max_failures=0)``: a failed or killed worker fails the run with its reason.
"""

import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from tltools import paths, runs
from tltools.errors import TLToolsError
from tltools.settings import Settings

# Seconds a chief waits for every worker to register with the relay before giving up.
REGISTER_TIMEOUT_S = 120.0
# Seconds between two polls of the relay (live log, stop request).
POLL_INTERVAL_S = 0.3
# Seconds a collective may wait for a worker that no longer answers before TensorFlow raises.
COLLECTIVE_TIMEOUT_S = 600.0

_logger = logging.getLogger(__name__)


def train(config, dataset, writer: runs.RunWriter, *, log, on_update=None, stop=None, from_run=None):
    """Train ``config`` data-parallel into ``writer``'s run folder and return the run as :func:`train` does.

    Args:
        config: The run's settings; ``config.workers`` worker processes (1: ``MirroredStrategy`` here).
        dataset: The data.
        writer: The run folder (new).
        log: The live log; with Ray the chief's events are replayed onto it.
        on_update: Optional ``callable(log)`` after every replayed batch and epoch.
        stop: A :class:`tltools.training.StopRequest`; a stop reaches every worker after its current batch.
        from_run: Continue from this run's model.

    Returns:
        :class:`tltools.training.trainer.TrainResult` read back from the run folder.

    Raises:
        TLToolsError: Ray is not installed or not reachable, or a worker failed (with its reason).
    """
    from tltools.training.trainer import run_into

    if config.workers == 1:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        execution = {"workers": 1, "executor": "mirrored", "replicas": strategy.num_replicas_in_sync}
        return run_into(writer, config, dataset, log, on_update, stop, from_run, strategy=strategy,
                        execution=execution)
    return _train_on_ray(config, dataset, writer, log, on_update, stop, from_run)


def _train_on_ray(config, dataset, writer, log, on_update, stop, from_run):
    ray = _import_ray()
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    from tltools.training.trainer import _record_failure

    writer.set_status(runs.RUNNING)
    writer.log(f"data-parallel run: {config.workers} workers (MultiWorkerMirroredStrategy through Ray Train)")
    address = Settings.from_env().ray_address
    started_here = connect(address, config.workers)
    relay = _relay_class().remote()
    storage = paths.cache_dir() / "ray-train"
    # Absolute paths: a worker runs in a folder of Ray's, perhaps on another machine (the same shared mount).
    dataset = dataclasses.replace(dataset, root=Path(dataset.root).resolve())
    setup = {"config": config.to_dict(), "dataset": dataset, "run_path": str(writer.path.resolve()),
             "from_run": None if from_run is None else str(Path(from_run).resolve()), "relay": relay,
             "address": address or "local", "environment": _worker_environment()}
    use_gpu = (Settings.from_env().ray_gpus > 0) if address else _local_gpus() >= config.workers
    trainer = TensorflowTrainer(
        worker_loop, train_loop_config=setup,
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=writer.path.name, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=0)),
    )
    follower = _Follower(relay, log, on_update, stop)
    follower.start()
    try:
        trainer.fit()
    except Exception as error:
        reason = worker_failure(error)
        _record_failure(writer, reason)
        raise TLToolsError(reason) from None
    finally:
        follower.finish()
        shutil.rmtree(storage / writer.path.name, ignore_errors=True)
        try:
            ray.kill(relay)
        except Exception:  # the cluster may be gone already; nothing to clean up then
            pass
        if started_here:
            ray.shutdown()
    return _read_back(writer)


def connect(address: str | None, workers: int) -> bool:
    """Connect this process to Ray; return whether a local Ray was started here (and should be shut down).

    Args:
        address: ``TLTOOLS_RAY_ADDRESS`` (``ray://head:10001``, ``head:6379``, ``auto``), or None
            for a local Ray bound to 127.0.0.1 with ``workers`` CPUs and no dashboard.
        workers: Worker processes the run needs.

    Raises:
        TLToolsError: Ray is missing, or the cluster cannot be reached.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    environment = {"env_vars": _worker_environment()}
    try:
        if address:
            ray.init(address=address, runtime_env=environment, logging_level=logging.WARNING, log_to_driver=False)
            return False
        with _loopback_only(ray):
            ray.init(address="local", num_cpus=workers, include_dashboard=False, runtime_env=environment,
                     logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise TLToolsError(f"could not start or reach {where} ({error}); check TLTOOLS_RAY_ADDRESS "
                           "or run with workers=1") from None
    return True


@contextlib.contextmanager
def _loopback_only(ray):
    """While Ray starts: every process of the local Ray binds to and advertises 127.0.0.1.

    Ray turns ``_node_ip_address="127.0.0.1"`` into the machine's routable address; its own switch
    for single-machine Ray (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read by the processes it starts
    and, as ``ray_constants.ENABLE_RAY_CLUSTER``, by this one) keeps everything on the loopback.
    """
    from ray._private import ray_constants

    variable, saved = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    saved_constant = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[variable], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved


def _worker_environment() -> dict:
    """Environment the workers need: tltools importable, and this process's ``TLTOOLS_*`` folders and settings."""
    package_root = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(part for part in (package_root, os.environ.get("PYTHONPATH")) if part)
    values = {key: value for key, value in os.environ.items() if key.startswith(("TLTOOLS_", "TF_CPP_"))}
    values.pop("TLTOOLS_RAY_ADDRESS", None)  # a worker trains in the cluster it runs in; it launches nothing
    return {**values, "PYTHONPATH": python_path}


def worker_failure(error: BaseException) -> str:
    """One line saying which worker failed and why, from what Ray Train raised."""
    text = str(error)
    rank = re.search(r"\[Rank ([\d,]+) Error Snippet\]", text)  # Ray joins the ranks that failed alike
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", line)]
    last = (raised or lines or [type(error).__name__])[-1]
    ranks = rank.group(1).split(",") if rank else []
    who = f"worker {ranks[0]}" if len(ranks) == 1 else f"workers {', '.join(ranks)}" if ranks else "a worker"
    return f"data-parallel training failed: {who} failed: {last}"[:500]


def _read_back(writer: runs.RunWriter):
    """The finished run as :func:`tltools.training.train` returns it."""
    from tltools.model.io import load_model
    from tltools.training.trainer import TrainResult

    run = runs.read_run(writer.path)
    model, classes, _ = load_model(writer.model_path)
    return TrainResult(run, model, classes, run.metrics)


def _import_ray():
    try:
        import ray
        import ray.train.tensorflow  # noqa: F401  (TensorflowTrainer: checked here, once)
    except ImportError as error:
        raise TLToolsError(f"workers > 1 needs Ray Train ({error}); install it with "
                           "`pip install -r requirements-ray.txt`, or set workers=1") from None
    return ray


def _local_gpus() -> int:
    from tltools.distributed import local_gpus

    return local_gpus()


@functools.cache
def _relay_class():
    """The relay actor class (Ray is imported only when a distributed run starts)."""
    ray = _import_ray()

    @ray.remote(num_cpus=0)
    class Relay:
        """Carries the chief's live-log events to the launching process and a stop request to the workers."""

        def __init__(self):
            self.events, self.stop, self.workers = [], False, {}

        def push(self, event: dict) -> None:
            self.events.append(event)

        def drain(self) -> list:
            events, self.events = self.events, []
            return events

        def request_stop(self) -> None:
            self.stop = True

        def stop_requested(self) -> bool:
            return self.stop

        def register(self, rank: int, facts: dict) -> int:
            self.workers[rank] = facts
            return len(self.workers)

        def registered(self) -> list:
            return [self.workers[rank] for rank in sorted(self.workers)]

    return Relay


class _Follower(threading.Thread):
    """Replays the chief's events onto the launching process's log and forwards a stop request to the workers."""

    def __init__(self, relay, log, on_update, stop):
        super().__init__(name="tltools-distributed-follower", daemon=True)
        self.relay, self.log, self.on_update, self.stop = relay, log, on_update, stop
        self._done = threading.Event()
        self._stop_sent = False

    def run(self):
        while not self._done.wait(POLL_INTERVAL_S):
            self.poll()

    def poll(self) -> None:
        import ray

        from tltools.worker import apply_event

        try:
            if self.stop is not None and self.stop.requested and not self._stop_sent:
                self.relay.request_stop.remote()
                self._stop_sent = True
            events = ray.get(self.relay.drain.remote(), timeout=30)
        except Exception as error:  # the cluster went away: the run's own failure says why
            _logger.debug("relay poll failed: %s", error)
            return
        for event in events:
            apply_event(self.log, event)
            if self.on_update is not None and event.get("op") in ("add_batch", "add_epoch"):
                self.on_update(self.log)

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=10)
        self.poll()  # what the chief logged last


def worker_loop(setup: dict) -> None:
    """One Ray Train worker: the run under ``MultiWorkerMirroredStrategy``, into the run folder on the chief.

    Args:
        setup: ``config`` (a dict), ``dataset``, ``run_path``, ``from_run``, ``relay`` (the actor), ``address``,
            ``environment`` (the launching process's ``TLTOOLS_*`` variables: the same folders and settings).
    """
    import ray.train
    import tensorflow as tf

    from tltools.distributed.extraction import Share, collective_barrier, sharing
    from tltools.distributed.loop import AgreedStop
    from tltools.training import TrainConfig, TrainingLog
    from tltools.training.trainer import run_into

    os.environ.update({key: value for key, value in setup["environment"].items() if key != "PYTHONPATH"})
    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    relay = setup["relay"]
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    facts = {"rank": rank, "pid": os.getpid(), "node": ray.util.get_node_ip_address()}
    ray.get(relay.register.remote(rank, facts))
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while len(workers := ray.get(relay.registered.remote())) < size and time.monotonic() < deadline:
        time.sleep(0.1)
    execution = {"workers": size, "executor": "ray-mwms", "ray_address": setup["address"],
                 "worker_pids": [worker["pid"] for worker in workers],
                 "worker_nodes": [worker["node"] for worker in workers]}
    stop = AgreedStop()
    watching = threading.Event()

    def watch_stop():
        while not watching.wait(POLL_INTERVAL_S * 2):
            try:
                if ray.get(relay.stop_requested.remote(), timeout=30):
                    stop.ask()
                    return
            except Exception:  # the relay is gone: the run is ending anyway
                return

    threading.Thread(target=watch_stop, name="tltools-stop-watch", daemon=True).start()
    chief = rank == 0
    folder = Path(setup["run_path"]) if chief else Path(tempfile.mkdtemp(prefix=f"tltools-worker{rank}-"))
    log = _relay_log(relay) if chief else TrainingLog()
    if chief:
        line = (f"Data-parallel: {size} workers (MultiWorkerMirroredStrategy through Ray Train), pids "
                + ", ".join(f"{worker['pid']} on {worker['node']}" for worker in workers))
        runs.RunWriter(folder).log(line)
        log.add_message(line)
    share = Share(rank, size, collective_barrier(strategy))
    try:
        with sharing(share):  # feature extraction: each worker computes its share of the images
            run_into(runs.RunWriter(folder), TrainConfig.from_dict(setup["config"]), setup["dataset"], log, None,
                     stop, setup["from_run"], strategy=strategy, execution=execution)
    finally:
        watching.set()
        if not chief:
            shutil.rmtree(folder, ignore_errors=True)
    sys.stdout.flush()


def _relay_log(relay):
    """A TrainingLog that also sends every change to the relay, as the job worker's ``events.jsonl`` records it."""
    from tltools.training import TrainingLog

    class RelayLog(TrainingLog):
        def _send(self, op, arg):
            relay.push.remote({"op": op, "arg": arg})

        def update(self, **values):
            super().update(**values)
            self._send("update", values)

        def add_batch(self, record):
            super().add_batch(record)
            self._send("add_batch", record)

        def add_epoch(self, record):
            super().add_epoch(record)
            self._send("add_epoch", record)

        def add_trial(self, record):
            super().add_trial(record)
            self._send("add_trial", record)

        def add_message(self, text):
            super().add_message(text)
            self._send("add_message", text)

    return RelayLog()
