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
            "phase_epoch": 0,
            "phase_epochs": 0,
            "steps_per_epoch": 0,
            "step": 0,
            "learning_rate": None,
            "started_at": time.time(),
            "epoch_started_at": None,
            "epochs": [],
            "batches": [],
            "messages": [],
            "trials": [],
            "auto_budget_s": None,
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

    def add_trial(self, record: dict) -> None:
        """Append one finished auto-mode trial (its ``trials.csv`` row: settings, ``val_accuracy``, ``seconds``)."""
        with self._lock:
            self._state["trials"].append(dict(record))

    def add_message(self, text: str) -> None:
        """Append a line for the user (a warning, a phase change)."""
        with self._lock:
            self._state["messages"].append(text)

    def snapshot(self) -> dict:
        """Return a deep copy of everything recorded, plus ``elapsed`` seconds and ``eta``, the phase's seconds left."""
        with self._lock:
            state = copy.deepcopy(self._state)
        now = time.time()
        state["elapsed"] = now - state["started_at"]
        state["eta"] = phase_eta(state, now)
        return state


def phase_eta(state: dict, now: float | None = None) -> float | None:
    """Seconds left in the current phase at its epoch cap, from that phase's own epoch times.

    Before the phase's first epoch ends, the running epoch's pace so far is used (once a
    batch has finished); epochs of another phase never count, since a fine-tuning epoch
    costs many head epochs.

    Args:
        state: A :meth:`TrainingLog.snapshot` (``phase``, ``phase_epoch``, ``phase_epochs``, ``step``,
            ``steps_per_epoch``, ``epoch_started_at``, ``epochs``).
        now: The time to measure the running epoch against (default: now).

    Returns:
        Seconds, or None while nothing has been timed yet (or outside an epoch loop).
    """
    if not state["phase_epochs"] or not state["phase_epoch"]:
        return None
    in_epoch = min(state["step"] / state["steps_per_epoch"], 1.0) if state["steps_per_epoch"] else 0.0
    timed = [epoch["seconds"] for epoch in state["epochs"] if epoch.get("phase") == state["phase"]
             and "seconds" in epoch]
    if timed:
        per_epoch = sum(timed) / len(timed)
    elif in_epoch > 0 and state["epoch_started_at"]:
        per_epoch = ((now or time.time()) - state["epoch_started_at"]) / in_epoch
    else:
        return None
    finished = len(timed)
    left = state["phase_epochs"] - finished - (in_epoch if finished < state["phase_epoch"] else 0.0)
    return max(left, 0.0) * per_epoch


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_text(state: dict, phases: int) -> tuple[float, str]:
    """Say where a running job is: the phase and its own epochs, the phase's time left, and overall progress.

    Args:
        state: A :meth:`TrainingLog.snapshot`.
        phases: How many phases the run has (1 without fine-tuning, else 2).

    Returns:
        ``(fraction, text)``: the overall share of epochs done (0..1, epoch caps counted; early
        stopping may end sooner) and one line such as "Phase 2 of 2, fine-tuning (unfreeze 30):
        epoch 3 of at most 5, about 12 s left in this phase · overall epoch 13 of at most 15, 1 min 20 s so far".
    """
    elapsed = _duration(state["elapsed"])
    if not state["phase"] or not state["phase_epoch"]:  # decoding, computing features, building
        return 0.0, f"{state['phase_name'].capitalize()}… ({elapsed} so far)"
    in_epoch = min(state["step"] / state["steps_per_epoch"], 1.0) if state["steps_per_epoch"] else 0.0
    earlier = sum(1 for epoch in state["epochs"] if epoch.get("phase", state["phase"]) < state["phase"])
    # In the last phase the cap is what earlier phases ran (early stopping may have ended them sooner)
    # plus this phase's cap; before it, the caps of all phases.
    total = earlier + state["phase_epochs"] if state["phase"] >= phases else state["total_epochs"]
    total = max(total, state["epoch"], 1)
    done = min((len(state["epochs"]) + in_epoch) / total, 1.0)
    eta = state.get("eta")
    left = "" if eta is None else f", about {_duration(eta)} left in this phase"
    rate = f", learning rate {state['learning_rate']:.1e}" if state.get("learning_rate") else ""
    head = f"Phase {state['phase']} of {phases}, " if phases > 1 else ""
    text = (f"{head}{state['phase_name']}: epoch {state['phase_epoch']} of at most {state['phase_epochs']}"
            f"{rate}{left} · overall epoch {state['epoch']} of at most {total}, {elapsed} so far")
    return done, text
