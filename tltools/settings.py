"""Every number the environment can set, read in one place: :meth:`Settings.from_env`.

Each field of :class:`Settings` (and of the :class:`~tltools.limits.Limits` and
:class:`Budget` it holds) is set by ``TLTOOLS_<FIELD NAME>``, e.g.
``TLTOOLS_MAX_ENTRIES`` or ``TLTOOLS_DECODE_MEMORY_BYTES``; defaults are the
fields' defaults. Numbers may be written in any notation (``1e9``). A bad value
is a one-line :class:`~tltools.errors.TLToolsError` naming the variable.
The README's limits table lists the same variables (a test compares them).
"""

import dataclasses
import os

from tltools.errors import TLToolsError
from tltools.limits import GIB, Limits


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much :func:`tltools.housekeeping.clean` keeps.

    Attributes:
        datasets_max_bytes: Most bytes of extracted datasets kept (``TLTOOLS_DATASETS_MAX_BYTES``).
        cache_max_bytes: Most bytes of feature and decoded-image caches kept (``TLTOOLS_CACHE_MAX_BYTES``).
        max_age_days: Items unused for longer are deleted (``TLTOOLS_MAX_AGE_DAYS``).
    """

    datasets_max_bytes: int = 20 * GIB
    cache_max_bytes: int = 10 * GIB
    max_age_days: float = 30.0

    @classmethod
    def from_env(cls) -> "Budget":
        """Return the budget :meth:`Settings.from_env` reads.

        Raises:
            TLToolsError: A ``TLTOOLS_*`` number is unusable.
        """
        return Settings.from_env().budget


@dataclasses.dataclass(frozen=True)
class Settings:
    """The numeric settings of this process.

    Attributes:
        limits: Safety limits for uploads and models (each ``TLTOOLS_<FIELD>`` > 0).
        budget: Disk budgets of the automatic cleanup (each ``TLTOOLS_<FIELD>`` >= 0).
        decode_memory_bytes: Decoded training images kept in memory; beyond it a file
            in the cache (``TLTOOLS_DECODE_MEMORY_BYTES``, >= 0).
        max_concurrent_jobs: Training jobs the app runs at once; the rest queue
            (``TLTOOLS_MAX_CONCURRENT_JOBS``, >= 1).
        job_processes: 1 runs each training job in a worker process of its own; 0 on a thread of
            the server (``TLTOOLS_JOB_PROCESSES``; tests of pages use 0 to skip the process start).
        ray_cpus: CPUs a job asks the Ray cluster for (``TLTOOLS_RAY_CPUS``, >= 0; with ``ray_address``).
        ray_gpus: GPUs a job asks the Ray cluster for (``TLTOOLS_RAY_GPUS``, >= 0, fractions allowed).
        ray_address: The Ray cluster jobs run on (``TLTOOLS_RAY_ADDRESS``: ``ray://head:10001``,
            ``head:6379`` or ``auto``; the one setting that is not a number); None (unset or blank)
            runs jobs in local worker processes (:mod:`tltools.ray_executor`).
    """

    limits: Limits = dataclasses.field(default_factory=Limits)
    budget: Budget = dataclasses.field(default_factory=Budget)
    decode_memory_bytes: int = 2 * GIB
    max_concurrent_jobs: int = 1
    job_processes: int = 1
    ray_cpus: float = 1.0
    ray_gpus: float = 0.0
    ray_address: str | None = None

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        """Return the defaults with every ``TLTOOLS_<FIELD>`` set in ``environ`` (default ``os.environ``) applied.

        Raises:
            TLToolsError: A variable is not a number, or is below its minimum (one line naming it).
        """
        environ = os.environ if environ is None else environ
        values: dict[str | None, dict] = {"limits": {}, "budget": {}, None: {}}
        for variable, (group, name, kind, minimum, exclusive) in _VARIABLES.items():
            value = env_number(variable, None, kind=kind, minimum=minimum, exclusive=exclusive, environ=environ)
            if value is not None:
                values[group][name] = value
        address = (environ.get("TLTOOLS_RAY_ADDRESS") or "").strip() or None
        return cls(limits=Limits(**values["limits"]), budget=Budget(**values["budget"]), ray_address=address,
                   **values[None])

    @classmethod
    def defaults(cls) -> dict[str, int | float]:
        """Return ``{variable: default}`` for every ``TLTOOLS_*`` number (what the README's table lists)."""
        settings = cls()
        return {variable: getattr(getattr(settings, group) if group else settings, name)
                for variable, (group, name, *_rest) in _VARIABLES.items()}


def _variables() -> dict[str, tuple]:
    """``TLTOOLS_<FIELD>`` → (group, field, kind, minimum, minimum excluded), from the dataclasses' fields."""
    table = {}
    for group, owner, minimum, exclusive in (("limits", Limits, 0, True), ("budget", Budget, 0, False)):
        for field in dataclasses.fields(owner):
            table["TLTOOLS_" + field.name.upper()] = (group, field.name, field.type, minimum, exclusive)
    table["TLTOOLS_DECODE_MEMORY_BYTES"] = (None, "decode_memory_bytes", int, 0, False)
    table["TLTOOLS_MAX_CONCURRENT_JOBS"] = (None, "max_concurrent_jobs", int, 1, False)
    table["TLTOOLS_JOB_PROCESSES"] = (None, "job_processes", int, 0, False)
    table["TLTOOLS_RAY_CPUS"] = (None, "ray_cpus", float, 0, False)
    table["TLTOOLS_RAY_GPUS"] = (None, "ray_gpus", float, 0, False)
    return table


def env_number(variable: str, default, *, kind: type = int, minimum: float = 0, exclusive: bool = False,
               environ=None):
    """Return the number in environment variable ``variable``, or ``default`` when it is unset or empty.

    Args:
        variable: The variable's name, e.g. ``TLTOOLS_MAX_ENTRIES``.
        default: Returned when the variable is unset or blank.
        kind: ``int`` (``1e9`` is accepted and becomes 1000000000) or ``float``.
        minimum: The smallest value allowed.
        exclusive: Whether ``minimum`` itself is refused (e.g. limits must be positive).
        environ: The environment to read; ``os.environ`` by default.

    Raises:
        TLToolsError: The value is not a number of that kind, or is below the minimum;
            the message names the variable, its value and what to set.
    """
    raw = (os.environ if environ is None else environ).get(variable)
    if raw is None or raw.strip() == "":
        return default
    bound = f"a number {'>' if exclusive else '>='} {minimum:g}"
    try:
        value = kind(float(raw))
    except (ValueError, OverflowError):  # not a number, nan or inf as an int
        raise TLToolsError(f"{variable}={raw!r} is not a usable number; set it to {bound} or unset it") from None
    if not (value > minimum if exclusive else value >= minimum):  # also refuses nan
        raise TLToolsError(f"{variable}={raw!r} must be {bound}; set it to one or unset it")
    return value


_VARIABLES = _variables()
