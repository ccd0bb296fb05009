"""A training job's own process, and the files it talks to the server through.

The job manager (:mod:`tltools.jobs`) gives each job a folder ``<runs>/.jobs/<job id>/``:

- ``job.json``: who submitted it, its settings, its run folder, when (kept after it ends);
- ``job.pkl``: what the worker needs to start (settings, dataset, trainer name; removed when it ends);
- ``events.jsonl``: the append-only progress log the worker writes (phase, batch and epoch
  metrics, messages, trials); the server tails it to rebuild the job's
  :class:`~tltools.training.TrainingLog`, so any server on the same folders sees the live run;
- ``stop``: created by the server to ask the worker to stop after its current batch;
- ``state.json``: ``queued``, ``running`` (with the worker's pid, host and where it runs, in words) or the outcome;
- ``result.json``: the worker's outcome (status, metrics, run folder, error);
- ``worker.log``: the worker's stdout and stderr (its last lines explain a crash);
- ``heartbeat``: a count the running worker rewrites every 2 s, so that a server that cannot check
  the worker's pid (a Ray task on another node) sees whether it still lives.

Run a job with ``python -m tltools.worker JOB_DIR``. ``python -m tltools.worker --warm`` imports
TensorFlow and the trainer first, then reads one job folder from its standard input and runs it: the
server keeps one such process ready so that a job starts without paying for the import; with
``--prebuild JSON`` it also builds the model of the server's last job ahead (a retrain at another
learning rate builds the same one).
Each process runs one job and exits, so no job shares Keras' global state with another.
"""

import importlib
import json
import os
import pickle
import socket
import sys
import threading
import time
from pathlib import Path

from tltools.errors import TLToolsError

JOB_FILE, JOB_META, EVENTS_FILE, STOP_FILE = "job.pkl", "job.json", "events.jsonl", "stop"
STATE_FILE, RESULT_FILE, LOG_FILE, CLAIM_FILE = "state.json", "result.json", "worker.log", "claim"
# The methods of TrainingLog an event may replay; anything else in the file is ignored.
EVENT_OPS = ("update", "add_batch", "add_epoch", "add_trial", "add_message")
STOP_POLL_S = 0.2
# A running worker rewrites ``heartbeat`` (a growing count) every HEARTBEAT_EVERY stop polls (2 s).
HEARTBEAT_FILE, HEARTBEAT_EVERY = "heartbeat", 10


def valid_id(job_id: str) -> bool:
    """Whether ``job_id`` looks like a job id (8 hex digits), so it is safe as a folder name."""
    return isinstance(job_id, str) and len(job_id) == 8 and all(ch in "0123456789abcdef" for ch in job_id)


def trainer_name(trainer) -> str:
    """Return ``"module:qualified.name"`` for a trainer another process can import.

    Args:
        trainer: A top-level function (or class) or such a name.

    Raises:
        TLToolsError: It cannot be imported by that name (a lambda, a nested function, an instance).
    """
    name = trainer if isinstance(trainer, str) else (
        f"{getattr(trainer, '__module__', '')}:{getattr(trainer, '__qualname__', '')}")
    module, _, attribute = name.partition(":")
    try:
        found = resolve(name) if module and attribute and "<" not in attribute else None
    except (ImportError, AttributeError):
        found = None
    if found is None or (not isinstance(trainer, str) and found is not trainer):
        raise TLToolsError(f"trainer {trainer!r} cannot be imported by name in a worker process; "
                           f"pass a top-level function or a 'module:function' string")
    return name


def resolve(name: str):
    """Return the object ``"module:qualified.name"`` names (raises ImportError or AttributeError)."""
    module, _, attribute = name.partition(":")
    found = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _plain(value):
    """JSON fallback: NumPy scalars and arrays become numbers and lists, paths and the rest strings."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def to_json(data) -> str:
    """``data`` as one line of JSON (NumPy values as numbers)."""
    return json.dumps(data, default=_plain)


def write_json(path: Path, data) -> None:
    """Write ``data`` to ``path`` atomically (a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(to_json(data), encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict | None:
    """Return the JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def apply_event(log, event: dict) -> None:
    """Replay one ``events.jsonl`` record (``{"op": ..., "arg": ...}``) onto a TrainingLog."""
    op, arg = event.get("op"), event.get("arg")
    if op == "update" and isinstance(arg, dict):
        log.update(**arg)
    elif op in EVENT_OPS:
        getattr(log, op)(arg)


class EventTail:
    """Reads the complete lines appended to an ``events.jsonl`` since the last call and replays them.

    Args:
        path: The events file (it may not exist yet).
        log: The TrainingLog to rebuild.
    """

    def __init__(self, path: Path, log):
        self.path, self.log, self._offset, self._partial = Path(path), log, 0, b""

    def poll(self) -> int:
        """Apply the events written since the last poll; return how many."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return 0
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            try:
                apply_event(self.log, json.loads(line))
            except ValueError:
                continue
        return len(lines)


def event_log(path: Path):
    """Return a TrainingLog that also appends every change to ``path`` as one JSON line.

    Imported lazily: only a worker pays for importing the training package.
    """
    from tltools.training import TrainingLog

    class EventLog(TrainingLog):
        def __init__(self):
            super().__init__()
            self._file = open(path, "a", encoding="utf-8", buffering=1)
            self._write_lock = threading.Lock()
            self._emit("update", {"started_at": self.value("started_at")})

        def _emit(self, op, arg):
            with self._write_lock:
                self._file.write(to_json({"op": op, "arg": arg}) + "\n")

        def update(self, **values):
            super().update(**values)
            self._emit("update", values)

        def add_batch(self, record):
            super().add_batch(record)
            self._emit("add_batch", record)

        def add_epoch(self, record):
            super().add_epoch(record)
            self._emit("add_epoch", record)

        def add_trial(self, record):
            super().add_trial(record)
            self._emit("add_trial", record)

        def add_message(self, text):
            super().add_message(text)
            self._emit("add_message", text)

    return EventLog()


def run_job(job_dir: Path | str, where: str | None = None) -> dict:
    """Run the job in ``job_dir`` in this process and write its ``result.json``.

    Reads ``job.pkl`` (``trainer`` name, ``config``, ``dataset``, ``from_run``, ``run_dir``,
    ``options``), calls ``trainer(config, dataset, log=, stop=, from_run=, run_dir=, **options)``
    with a log that writes ``events.jsonl`` and a stop request that follows the ``stop`` file.

    Args:
        job_dir: The job's folder.
        where: Where this process runs, in words, for ``state.json`` and the Train page
            (default ``"local process pid N"``; a Ray task names its node).

    Returns:
        The result: ``status`` (completed, stopped or failed), ``metrics``, ``run_dir``, ``auto``, ``summary``,
        ``error``.
    """
    from tltools.training import StopRequest

    job_dir = Path(job_dir)
    write_json(job_dir / STATE_FILE, {"status": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                      "where": where or f"local process pid {os.getpid()}"})
    log = event_log(job_dir / EVENTS_FILE)
    stop = StopRequest()
    done = threading.Event()

    def follow_stop_file():  # and beat: a server on another machine sees the worker live by the count growing
        beats = 0
        while not done.wait(STOP_POLL_S):
            if (job_dir / STOP_FILE).exists():
                stop.stop()
            beats += 1
            if beats % HEARTBEAT_EVERY == 0:
                try:
                    (job_dir / HEARTBEAT_FILE).write_text(str(beats))
                except OSError:
                    pass

    threading.Thread(target=follow_stop_file, name="tltools-stop-file", daemon=True).start()
    try:
        spec = pickle.loads((job_dir / JOB_FILE).read_bytes())
        if (job_dir / STOP_FILE).exists():
            stop.stop()
        trainer = resolve(spec["trainer"])
        outcome = trainer(spec["config"], spec["dataset"], log=log, stop=stop, from_run=spec["from_run"],
                          run_dir=spec["run_dir"], **spec.get("options", {}))
        result = {"status": "stopped" if stop.requested else "completed", "metrics": outcome.metrics,
                  "run_dir": str(getattr(outcome, "run_dir", None) or spec["run_dir"]),
                  "auto": getattr(outcome, "auto", None), "summary": getattr(outcome, "summary", None),
                  "error": None}
    except BaseException as error:  # noqa: BLE001 - every failure is the job's outcome, reported to the server
        import traceback

        traceback.print_exc()
        result = {"status": "failed", "metrics": None, "run_dir": None, "auto": None, "summary": None,
                  "error": str(error) or type(error).__name__}
    finally:
        done.set()
    write_json(job_dir / RESULT_FILE, result)
    sys.stdout.flush()
    sys.stderr.flush()
    return result


def warm_up(prebuild: dict | None = None) -> None:
    """Pay ahead what a job's first steps cost in a new process: the modules training uses, building the
    default backbone with its weights, and TensorFlow's runtime (one forward pass). Keras' session is
    cleared afterwards, so the job's layer names are those of a fresh process. With ``prebuild`` (the
    arguments of :func:`tltools.model.builder.prebuild`: the last job's model), that model is then built
    and kept for the job's own ``build_model`` call. Failures are ignored (the job then pays for it itself)."""
    try:
        import keras
        import numpy as np

        import tltools.evaluation  # noqa: F401
        import tltools.training.fast_path  # noqa: F401
        from tltools.model import build_model
        from tltools.training import TrainConfig

        config = TrainConfig()
        model = build_model(config.backbone, 2, weights=config.weights, input_size=64)
        model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
        del model
        keras.backend.clear_session()
        if prebuild:
            from tltools.model.builder import prebuild as build_ahead

            build_ahead(**prebuild)
    except Exception:  # noqa: BLE001 - only an optimisation
        pass


def redirect_output(job_dir: Path) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to the job's ``worker.log``."""
    handle = os.open(job_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)


def main(argv: list[str] | None = None) -> int:
    """``python -m tltools.worker JOB_DIR`` or ``--warm [--prebuild JSON]`` (preload, then read JOB_DIR from stdin).

    Returns 0 (2 for unknown arguments)."""
    argv = sys.argv[1:] if argv is None else argv
    ahead = []
    if argv[:1] == ["--warm"] and (len(argv) == 1 or (len(argv) == 3 and argv[1] == "--prebuild")):
        started = time.monotonic()
        import tltools.training  # noqa: F401 - the import is the point: TensorFlow, Keras, the trainer

        warm_up(json.loads(argv[2]) if len(argv) == 3 else None)
        print("ready", flush=True)  # JobManager.wait_warm reads this
        line = sys.stdin.readline().strip()
        if not line:  # the server went away or no longer needs this worker
            return 0
        job_dir = Path(line)
        redirect_output(job_dir)
        from tltools.model import builder

        ahead = list(builder._PREBUILT)
        print(f"warm worker {os.getpid()}: imports took {time.monotonic() - started:.1f} s"
              + (f"; built ahead: {ahead[0]}" if ahead else ""), flush=True)
    elif len(argv) == 1:
        job_dir = Path(argv[0])
    else:
        print("usage: python -m tltools.worker JOB_DIR | --warm [--prebuild JSON]", file=sys.stderr)
        return 2
    run_job(job_dir)
    if ahead:
        print("the model built ahead was " + ("not used (the job built another)" if builder._PREBUILT else "used"),
              flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is on disk (result.json last); skip the interpreter's teardown, which takes seconds
    # with TensorFlow loaded and would only delay the next job.
    os._exit(code)
