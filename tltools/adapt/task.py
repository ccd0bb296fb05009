"""Adaptation as a background job: the app submits :data:`ADAPT_TASK` to the job manager.

:func:`adapt_task` runs :func:`tltools.adapt.adapt` in the job's worker
process (:mod:`tltools.jobs`), writing the adapted run into the job's run
folder. Every progress line (stages, each self-training round's pseudo-label
count) becomes a job log message and the job's ``phase_name``; Stop ends it
after the current stage or round, the run saved as ``stopped``. The job's
``summary`` is the run's ``adapt.json`` report.

The page keeps uploaded zips with :func:`tltools.data.extract_upload` (the
uploads area, once per content), where they outlive its request and the
worker can read them.
"""

import types
from pathlib import Path

from tltools import housekeeping, runs
from tltools.adapt.engine import THRESHOLDS, adapt
from tltools.training import TrainConfig

ADAPT_TASK = "tltools.adapt.task:adapt_task"


def adapt_task(config, dataset, *, log, stop, from_run=None, run_dir=None, source_run: str, target: str,
               target_labels: str | None = None, method: str = "self-train", thresholds=THRESHOLDS,
               source_views: int | None = None):
    """Adapt ``source_run`` to the images in ``target`` as a job; called by the job's worker.

    Args:
        config: The source run's settings (the job's record; the engine reads the run itself).
        dataset: The source run's data (kept leased while the job runs).
        log: The job's :class:`~tltools.training.TrainingLog`: messages and ``phase_name``.
        stop: The job's stop request.
        from_run: Unused (adaptation always starts from ``source_run``).
        run_dir: The new run folder to write.
        source_run: The run folder to adapt.
        target: A folder or ``.zip`` of unlabelled target images.
        target_labels: A folder of labelled target images, for measuring only, or None.
        method: ``adabn``, ``self-train`` or ``both``.
        thresholds: Self-training's confidence threshold per round.
        source_views: Corrupted copies per source image (None: the engine's default).

    Returns:
        An object with ``metrics`` (the last stage's facts), ``run_dir`` and ``summary`` (``adapt.json``).

    Raises:
        TLToolsError: What :func:`tltools.adapt.adapt` raises.
    """
    def say(line: str) -> None:
        log.add_message(line)
        log.update(phase_name=line)

    # Uploads the page kept in the uploads area: leased, so that no cleanup removes them meanwhile.
    leases = [housekeeping.lease_dataset(folder) for folder in (target, target_labels) if folder]  # noqa: F841
    log.update(phase=1, phase_name=f"adapting with {method}")
    extra = {} if source_views is None else {"source_views": int(source_views)}
    result = adapt(source_run, target, method=method, target_labels=target_labels, thresholds=thresholds,
                   run_dir=Path(run_dir) if run_dir is not None else None, on_message=say, stop=stop, **extra)
    stages = result.report["stages"]
    log.update(phase_name="stopped" if result.report["stopped"] else "completed")
    return types.SimpleNamespace(metrics=dict(stages[list(stages)[-1]]), run_dir=result.run.path,
                                 summary=result.report)


def submit_adapt(manager, run: runs.RunInfo, target: Path | str, *, target_labels: Path | str | None = None,
                 method: str = "self-train", owner: str | None = None):
    """Queue adapting ``run`` to ``target`` on ``manager`` (a :class:`~tltools.jobs.JobManager`); return the job.

    Raises:
        TLToolsError: The run's settings are unreadable, or its source images are gone (self-training
            trains on them; the job keeps them from being cleaned while it runs).
    """
    config = TrainConfig.from_dict(run.config)
    dataset = runs.load_run_dataset(run)
    options = {"source_run": str(run.path), "target": str(target), "method": method,
               "target_labels": None if target_labels is None else str(target_labels)}
    return manager.submit(config, dataset, owner=owner, task=ADAPT_TASK, options=options)



def latest_adapt_job(manager, owner: str | None, run: runs.RunInfo):
    """Return ``owner``'s newest adaptation job of ``run`` on ``manager``, or None (so a rerun page finds it again)."""
    source = str(run.path)
    return next((job for job in manager.jobs(owner) if job.task == ADAPT_TASK
                 and job.options.get("source_run") == source), None)
