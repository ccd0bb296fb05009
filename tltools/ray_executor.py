"""Jobs on a Ray cluster: with ``TLTOOLS_RAY_ADDRESS`` set, each job is a Ray task on some node.

The :class:`~tltools.jobs.JobManager` hands a job folder to :meth:`RayExecutor.submit` instead of
starting a local worker process. The Ray task runs :func:`tltools.worker.run_job` on whichever node
has the CPUs and GPUs it asks for (``TLTOOLS_RAY_CPUS``, ``TLTOOLS_RAY_GPUS``), in a Ray worker
process of its own that exits after the job (``max_calls=1``: no Keras state shared with another
job). The job folder stays the channel exactly as for local processes (``events.jsonl``, ``stop``,
``result.json``, ``worker.log``), so every node must see the server's folders at the same paths:
:meth:`RayExecutor.check_storage` proves it once, before the first job, with a marker file per
folder that a Ray task must read back (and answer in). Liveness comes from the task's object ref
instead of a pid; a task that fails or whose worker is killed ends its job ``failed`` with Ray's
reason. Ray is optional: it is imported only here, only when the variable is set.
"""

import os
import secrets
import socket
import sys
from pathlib import Path

from tltools.errors import TLToolsError

INSTALL_HINT = "pip install -r requirements-ray.txt"
MARKER = ".tltools-shared-storage"
# Environment variables the server passes to every Ray task (the node's own are those of `ray start`).
PASSED_PREFIXES = ("TLTOOLS_", "KERAS_", "TF_CPP_MIN_LOG_LEVEL")
CHECK_TIMEOUT_S = 120


def import_ray(address: str):
    """Return the ``ray`` module.

    Raises:
        TLToolsError: Ray is not installed (one line: how to install it, or unset the variable).
    """
    try:
        import ray
    except ImportError:
        raise TLToolsError(f"TLTOOLS_RAY_ADDRESS={address!r} is set but Ray is not installed; run "
                           f"`{INSTALL_HINT}` or unset TLTOOLS_RAY_ADDRESS to train on this machine") from None
    return ray


def task_env() -> dict[str, str]:
    """The variables a job's Ray task runs with: this server's ``TLTOOLS_*`` settings (not the Ray address, so a
    job never submits to Ray itself) and the import path of this tltools (so stand-in tasks import too)."""
    env = {key: value for key, value in os.environ.items()
           if key.startswith(PASSED_PREFIXES) and key != "TLTOOLS_RAY_ADDRESS"}
    source = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([source, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
                                                      )).rstrip(os.pathsep)
    return env


def run_on_node(job_dir: str) -> dict:
    """The Ray task: run the job in ``job_dir`` here, its output into its ``worker.log``; return its result.

    Records where it runs (Ray node id, host name, pid) in the job's ``state.json``.
    """
    import ray

    from tltools import worker

    node = ray.get_runtime_context().get_node_id()
    worker.redirect_output(Path(job_dir))
    where = f"Ray node {node[:12]} on {socket.gethostname()}, pid {os.getpid()}"
    try:
        return worker.run_job(job_dir, where=where)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def probe_storage(markers: dict[str, str]) -> dict[str, str]:
    """The storage check's Ray task: for each ``{folder: token}`` read the marker the server wrote there and
    write an answer beside it. Returns ``{folder: problem}`` for each folder this node does not share."""
    problems = {}
    for folder, token in markers.items():
        marker = Path(folder) / f"{MARKER}-{token}"
        try:
            if marker.read_text(encoding="utf-8") != token:
                problems[folder] = "holds other content at that path (a local folder, not the shared one)"
                continue
            marker.with_name(marker.name + ".answer").write_text(socket.gethostname(), encoding="utf-8")
        except FileNotFoundError:
            problems[folder] = "is not there or is another folder (a local disk, not the shared one)"
        except OSError as error:
            problems[folder] = f"cannot be read or written ({error.strerror or error})"
    return problems


class RayTask:
    """A job running as a Ray task: its object ref, and what the cluster said when it ended."""

    def __init__(self, ray, ref):
        self._ray, self.ref = ray, ref

    def running(self) -> bool:
        """True until the task has ended (with a result or an error)."""
        ready, _ = self._ray.wait([self.ref], timeout=0)
        return not ready

    def failure(self) -> str | None:
        """Why the task failed (Ray's error, first line), or None when it returned or still runs."""
        if self.running():
            return None
        try:
            self._ray.get(self.ref, timeout=10)
        except Exception as error:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, TaskCancelledError, ...
            text = str(error).strip().splitlines()
            return f"{type(error).__name__}: {text[0] if text else 'no message'}"
        return None

    def cancel(self) -> None:
        """Kill the task's worker process (the job then fails with that reason)."""
        self._ray.cancel(self.ref, force=True)


class RayExecutor:
    """Submits job folders to the Ray cluster at ``address``.

    Args:
        address: ``ray://host:10001`` (Ray Client), ``host:6379`` or ``auto`` (inside the cluster); a
            driver already connected (``ray.init`` in this process) is used as it is.
        num_cpus: CPUs each job asks for.
        num_gpus: GPUs each job asks for.

    Raises:
        TLToolsError: Ray is not installed.
    """

    def __init__(self, address: str, num_cpus: float = 1.0, num_gpus: float = 0.0):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self._ray = import_ray(address)
        self._checked: set[str] = set()

    def connect(self):
        """Connect this process to the cluster once (later calls reuse the connection); return ``ray``.

        Raises:
            TLToolsError: The cluster cannot be reached (one line naming the address).
        """
        ray = self._ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, logging_level="WARNING", log_to_driver=False,
                         ignore_reinit_error=True)
            except Exception as error:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError, ...
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise TLToolsError(f"could not connect to the Ray cluster at TLTOOLS_RAY_ADDRESS={self.address!r}: "
                                   f"{first}; start it with `ray start --head` or fix the address") from None
        return ray

    def check_storage(self, folders: dict[str, Path]) -> None:
        """Make sure a Ray worker sees each of ``folders`` (``{variable: path}``) as this server does; once per folder.

        Writes a marker with a random token into each folder, runs one small Ray task that must
        read every marker back and write an answer beside it, then reads the answers.

        Raises:
            TLToolsError: A worker cannot see or write one of the folders (one line naming the
                variable, the folder and the fix), or the cluster does not answer in time.
        """
        todo = {name: Path(folder).absolute() for name, folder in folders.items()
                if str(Path(folder).absolute()) not in self._checked}
        if not todo:
            return
        ray = self.connect()
        tokens = {}
        try:
            for folder in todo.values():
                folder.mkdir(parents=True, exist_ok=True)
                token = secrets.token_hex(8)
                write_marker(folder / f"{MARKER}-{token}", token)
                tokens[str(folder)] = token
            remote = ray.remote(probe_storage).options(num_cpus=0, max_retries=0,
                                                       runtime_env={"env_vars": task_env()})
            try:
                problems = ray.get(remote.remote(tokens), timeout=CHECK_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - GetTimeoutError, a crashed probe, ...
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise TLToolsError(f"the Ray cluster at {self.address!r} did not run the shared-storage check "
                                   f"({first}); check that its nodes are up and have tltools installed") from None
            for name, folder in todo.items():
                answer = folder / f"{MARKER}-{tokens[str(folder)]}.answer"
                problem = problems.get(str(folder)) or (None if answer.is_file() else
                                                        "was written by the worker but the server does not see it")
                if problem:
                    label = f"{name}={folder}" if name.startswith("TLTOOLS_") else f"{name} {folder}"
                    raise TLToolsError(f"a Ray worker cannot use {label}: it {problem}; mount the same shared "
                                       f"folder (e.g. NFS) at {folder} on every node")
                self._checked.add(str(folder))
        except OSError as error:
            raise TLToolsError(f"could not write the shared-storage check's marker ({error}); check that "
                               f"{', '.join(map(str, todo.values()))} are writable") from error
        finally:
            for folder, token in tokens.items():
                for suffix in ("", ".answer"):
                    (Path(folder) / f"{MARKER}-{token}{suffix}").unlink(missing_ok=True)

    def submit(self, job_dir: Path) -> RayTask:
        """Start the job in ``job_dir`` as a Ray task with this executor's resources; return it at once."""
        ray = self.connect()
        remote = ray.remote(max_calls=1, max_retries=0)(run_on_node).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, runtime_env={"env_vars": task_env()})
        return RayTask(ray, remote.remote(str(job_dir)))


def write_marker(path: Path, token: str) -> None:
    """Write the storage check's marker (a separate function so tests can simulate a folder nodes do not share)."""
    path.write_text(token, encoding="utf-8")
