"""The job folder's event log: what a worker writes, the server rebuilds (no processes started here)."""

import numpy as np

from tltools import worker
from tltools.training import TrainingLog


def test_every_change_a_worker_makes_to_its_log_is_rebuilt_by_the_server_that_tails_it(tmp_path):
    path = tmp_path / worker.EVENTS_FILE
    written = worker.event_log(path)
    rebuilt = TrainingLog()
    tail = worker.EventTail(path, rebuilt)
    written.update(phase=1, phase_name="training", total_epochs=3, steps_per_epoch=2)
    written.add_batch({"step": 1, "loss": np.float32(0.75)})  # NumPy values, as Keras logs them
    assert tail.poll() == 3  # started_at, the update, the batch
    written.add_epoch({"epoch": 1, "loss": 0.5, "val_loss": np.float64(0.625), "phase": 1})
    written.add_message("Phase 2: fine-tuning")
    written.add_trial({"number": 0, "val_accuracy": 0.5})
    tail.poll()

    def comparable(log):
        return {key: value for key, value in log.snapshot().items() if key not in ("elapsed", "eta")}

    assert comparable(rebuilt) == comparable(written)
    assert rebuilt.snapshot()["batches"] == [{"step": 1, "loss": 0.75}]


def test_a_line_still_being_written_waits_for_its_end_and_junk_is_skipped(tmp_path):
    path = tmp_path / worker.EVENTS_FILE
    log = TrainingLog()
    tail = worker.EventTail(path, log)
    assert tail.poll() == 0, "no file yet is no events"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"op": "add_message", "arg": "one"}\nnot json\n{"op": "os.system", "arg": "x"}\n{"op": "add_me')
    tail.poll()
    assert log.snapshot()["messages"] == ["one"]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('ssage", "arg": "two"}\n')
    tail.poll()
    assert log.snapshot()["messages"] == ["one", "two"]


def test_the_event_log_carries_every_method_that_changes_a_training_log():
    changing = {name for name in vars(TrainingLog) if name.startswith("add_") or name == "update"}
    assert changing <= set(worker.EVENT_OPS), f"not replayed from events.jsonl: {changing - set(worker.EVENT_OPS)}"


def test_trainers_are_named_for_a_worker_and_unnamable_ones_refused():
    import pytest

    from tltools.errors import TLToolsError
    from tltools.training import train

    assert worker.trainer_name(train) == "tltools.training.trainer:train"
    assert worker.resolve(worker.trainer_name("tests.worker_trainers:until_stopped")).__name__ == "until_stopped"
    for bad in (lambda: None, "tests.worker_trainers:nope", "no_such_module:x", object()):
        with pytest.raises(TLToolsError, match="cannot be imported by name"):
            worker.trainer_name(bad)
    assert worker.valid_id("0123abcd") and not worker.valid_id("../../etc") and not worker.valid_id("0123ABCD")
