"""Distillation as a background job: the app submits :data:`DISTILL_TASK` to the job manager.

:func:`distill_task` runs :func:`tltools.distill.run_distillation` in the job's
worker (:mod:`tltools.jobs`): the student trains through the one trainer, so
its epochs, batches and messages reach the job's live log as any training
job's do, Stop ends it after the current batch (the best epoch kept, no
comparison), and the job's ``summary`` is the run's ``distill.json`` report.
"""

import types
from pathlib import Path

from tltools import housekeeping, runs
from tltools.distill.engine import run_distillation, student_config
from tltools.export.latency import REPEATS

DISTILL_TASK = "tltools.distill.task:distill_task"


def distill_task(config, dataset, *, log, stop, from_run=None, run_dir=None, compare: bool = True,
                 latency_repeats: int = REPEATS):
    """Distil as a job: train the student ``config`` describes (it names the teacher), then compare.

    Args:
        config: The student's settings (:func:`tltools.distill.student_config`).
        dataset: The teacher's images (the trainer keeps the teacher's split of them).
        log: The job's :class:`~tltools.training.TrainingLog`.
        stop: The job's stop request.
        from_run: Unused.
        run_dir: The new run folder.
        compare: Also train the student alone and compare (int8 size, latency).
        latency_repeats: Timed calls per latency figure.

    Returns:
        An object with ``metrics`` (the student's), ``run_dir`` and ``summary`` (``distill.json``).

    Raises:
        TLToolsError: What :func:`tltools.training.train` raises (a teacher that is gone, weights unavailable).
    """
    # Unlabelled images the page kept in the uploads area: leased, so that no cleanup removes them meanwhile.
    lease = housekeeping.lease_dataset(config.distill_unlabeled) if config.distill_unlabeled else None  # noqa: F841
    result = run_distillation(config, dataset, run_dir=Path(run_dir), compare=bool(compare),
                              latency_repeats=int(latency_repeats), log=log, stop=stop, on_message=log.add_message)
    return types.SimpleNamespace(metrics=result.metrics, run_dir=result.run.path, summary=result.report)


def submit_distill(manager, teacher: runs.RunInfo, *, owner: str | None = None, compare: bool = True, **settings):
    """Queue distilling ``teacher`` on ``manager`` (a :class:`~tltools.jobs.JobManager`); return the job.

    Args:
        manager: The job manager.
        teacher: The teacher run.
        owner: Who submits it (the app's session id).
        compare: Also train the student alone and compare.
        **settings: :func:`tltools.distill.student_config`'s keyword arguments (student, image_size, ...).

    Raises:
        TLToolsError: A bad setting (one line), or the teacher's images are gone or changed.
    """
    config = student_config(teacher.path, **settings)
    dataset = runs.load_run_dataset(teacher)
    return manager.submit(config, dataset, owner=owner, task=DISTILL_TASK, options={"compare": bool(compare)})


def latest_distill_job(manager, owner: str | None, teacher: runs.RunInfo):
    """Return ``owner``'s newest distillation job from ``teacher`` on ``manager``, or None."""
    wanted = str(teacher.path.resolve())
    return next((job for job in manager.jobs(owner) if job.task == DISTILL_TASK
                 and job.config.teacher_run == wanted), None)
