"""Stand-in trainers a worker process imports by name (``tests.worker_trainers:until_stopped``).

They write a run folder as :func:`tltools.training.train` does (status with the worker's pid,
epochs into the live log) without building a model, so the process machinery is tested quickly.
"""

import os
import time
import types

from tltools import runs


def until_stopped(config, dataset, *, log, stop, from_run, run_dir):
    """Log an epoch every 50 ms until stopped or ``config.epochs`` are done; return the worker's pid in the metrics."""
    writer = runs.RunWriter(run_dir)
    writer.set_status(runs.RUNNING)
    log.update(phase=1, phase_name="training", total_epochs=config.epochs)
    epoch = 0
    while not stop.requested and epoch < config.epochs:
        epoch += 1
        log.add_epoch({"epoch": epoch, "loss": 1.0 / epoch})
        time.sleep(0.05)
    writer.set_status(runs.STOPPED if stop.requested else runs.COMPLETED)
    return types.SimpleNamespace(metrics={"pid": os.getpid(), "epochs_run": epoch, "dataset": dataset})


def echo_task(config, dataset, *, log, stop, from_run, run_dir, word, times=1):
    """A job task other than training: logs ``word`` ``times`` times and returns it in its summary."""
    for _ in range(times):
        log.add_message(word)
    return types.SimpleNamespace(metrics={"pid": os.getpid()}, summary={"said": [word] * times})
