"""A wall-clock deadline shared by every step of an auto run."""

import time


class Deadline:
    """A time budget that started when the object was made.

    Every step of :func:`tltools.auto.run_auto` asks it how much time is left
    before it starts something (a feature extraction, a trial, the final run)
    and, for long steps, between epochs, so the whole run ends within the budget.

    Args:
        seconds: The budget, in seconds (> 0).
        clock: ``callable()`` returning monotonic seconds; :func:`time.monotonic` unless a test fakes it.

    Raises:
        ValueError: ``seconds`` is not positive.
    """

    def __init__(self, seconds: float, *, clock=time.monotonic):
        if not seconds > 0:
            raise ValueError(f"a time budget must be positive, not {seconds!r}")
        self.seconds = float(seconds)
        self._clock = clock
        self._start = clock()

    @property
    def elapsed(self) -> float:
        """Seconds used since the budget started."""
        return self._clock() - self._start

    @property
    def remaining(self) -> float:
        """Seconds left (never below 0)."""
        return max(self.seconds - self.elapsed, 0.0)

    @property
    def expired(self) -> bool:
        """Whether the budget is used up."""
        return self.remaining <= 0

    def allows(self, seconds: float, *, keep: float = 0.0) -> bool:
        """Return whether a step of ``seconds`` still fits, leaving ``keep`` seconds for later steps."""
        return seconds + keep <= self.remaining

    def until(self, keep: float) -> float:
        """Return the time (on this deadline's clock) at which only ``keep`` seconds are left."""
        return self._start + self.seconds - keep

    def now(self) -> float:
        """Return the current time on this deadline's clock (compare with :meth:`until`)."""
        return self._clock()
