"""How tests wait: poll a condition until it holds (or until a deadline), or check that it keeps holding."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], deadline: float, message: str | Callable[[], str],
               interval: float = 0.02) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Args:
        condition: A function of no arguments; an exception it raises (e.g. an
            assertion that a process is still alive) ends the wait at once.
        deadline: Seconds to wait at most.
        message: What did not happen (or a function returning it, called on
            timeout, to describe the state reached), for the failure message.
        interval: Seconds between calls.

    Returns:
        The first truthy value ``condition`` returned.

    Raises:
        AssertionError: ``condition`` was still falsy after ``deadline`` seconds.
    """
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{message() if callable(message) else message} (waited {deadline} s)")
        time.sleep(interval)


def holds_for(condition: Callable[[], object], seconds: float, message: str, interval: float = 0.02) -> None:
    """Check that ``condition`` stays truthy for ``seconds`` (that something does *not* happen).

    Args:
        condition: A function of no arguments.
        seconds: How long it must keep holding.
        message: What happened instead, for the failure message.
        interval: Seconds between calls.

    Raises:
        AssertionError: ``condition`` returned something falsy within ``seconds``.
    """
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert condition(), message
        time.sleep(interval)
    assert condition(), message
