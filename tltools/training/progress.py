"""``TrainingLog``: a thread-safe record of a run's progress that UIs read while it trains.

The training thread appends (through :class:`MetricsRecorder`); the app's live
charts and the CLI's progress bar read :meth:`TrainingLog.snapshot`, a copy,
so neither ever touches Keras objects from another thread.
"""

import copy
import threading
import time


class TrainingLog:
    """Per-batch and per-epoch metrics, learning rate, timings and phase of one run."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state = {
            "phase": 0,
            "phase_name": "starting",
            "total_epochs": 0,
            "epoch": 0,
            "steps_per_epoch": 0,
            "step": 0,
            "learning_rate": None,
            "started_at": time.time(),
            "epoch_started_at": None,
            "epochs": [],
            "batches": [],
            "messages": [],
        }

    def update(self, **values) -> None:
        """Set top-level fields (phase, epoch, step, learning_rate, ...)."""
        with self._lock:
            self._state.update(values)

    def value(self, key: str):
        """Return one top-level field (``phase``, ``epoch``, ...) without copying the records."""
        with self._lock:
            return self._state[key]

    def add_batch(self, record: dict) -> None:
        """Append one batch's logs (``step``, ``loss``, ``accuracy``, ...)."""
        with self._lock:
            self._state["batches"].append(dict(record))

    def add_epoch(self, record: dict) -> None:
        """Append one epoch's logs (``epoch``, ``loss``, ``val_loss``, ``learning_rate``, ``seconds``, ...)."""
        with self._lock:
            self._state["epochs"].append(dict(record))

    def add_message(self, text: str) -> None:
        """Append a line for the user (a warning, a phase change)."""
        with self._lock:
            self._state["messages"].append(text)

    def snapshot(self) -> dict:
        """Return a deep copy of everything recorded, plus ``elapsed`` and ``eta`` seconds."""
        with self._lock:
            state = copy.deepcopy(self._state)
        state["elapsed"] = time.time() - state["started_at"]
        state["eta"] = _eta(state)
        return state


def _eta(state: dict) -> float | None:
    """Seconds left, from the mean duration of the finished epochs (None before the first)."""
    finished = [epoch["seconds"] for epoch in state["epochs"] if "seconds" in epoch]
    if not finished or not state["total_epochs"]:
        return None
    per_epoch = sum(finished) / len(finished)
    in_epoch = state["step"] / state["steps_per_epoch"] if state["steps_per_epoch"] else 0.0
    left = state["total_epochs"] - len(state["epochs"]) - min(in_epoch, 1.0)
    return max(left, 0.0) * per_epoch
