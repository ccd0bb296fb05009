"""The health analysis as a background job, and the saved report it hands back.

The Data health page submits :data:`ANALYSIS_TASK` to the job manager
(:mod:`tltools.jobs`): :func:`analysis_task` runs :func:`~tltools.health.analysis.analyse`
and the map's projection in the job's worker process, reports each stage in the
job's log (``health_stage``, ``health_done``, ``health_total`` and a message per
step), honours Stop at every progress report, and writes the report with its map
coordinates to one file (:func:`report_path`: in the cache folder, one per dataset
and feature settings, so analysing again replaces it). The job's ``summary`` names
that file; the page loads it (:func:`load_report`). Because the file's name follows
from the dataset and settings alone, a refreshed page or another session on the same
data finds the running job (:func:`find_running`) and the finished report.
"""

import hashlib
import pickle
import time
import types
from pathlib import Path

from tltools import fileio, paths
from tltools.errors import TLToolsError
from tltools.health.analysis import AnalysisStopped, HealthReport, analyse
from tltools.health.projection import project

ANALYSIS_TASK = "tltools.health.task:analysis_task"
REPORTS_FOLDER = "health"
# Seconds between two progress events of one stage (decoding reports every image).
PROGRESS_EVERY_S = 0.25


def report_path(dataset, settings) -> Path:
    """Return the file an analysis of ``dataset`` with ``settings``' features is saved to.

    Args:
        dataset: The loaded :class:`~tltools.data.Dataset` (its folder, content fingerprint, split of each image
            (leakage depends on it) and version).
        settings: A :class:`~tltools.training.TrainConfig` (``backbone``, ``image_size``, ``weights``).

    Returns:
        ``<TLTOOLS_CACHE>/health/<digest>.pkl`` (it may not exist yet).
    """
    items = dataset.items.sort_values("relpath")
    splits = hashlib.sha256("\n".join(items["relpath"] + "\0" + items["split"]).encode()).hexdigest()
    key = "\n".join(str(part) for part in (Path(dataset.root).resolve(), dataset.fingerprint, splits, dataset.version,
                                           settings.backbone, settings.image_size, settings.weights))
    return paths.cache_dir() / REPORTS_FOLDER / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pkl"


def save_report(report: HealthReport, coordinates, path: Path | str) -> None:
    """Write ``report`` and its map ``coordinates`` to ``path`` atomically (a reader never sees half of it).

    Raises:
        OSError: The disk refused the write.
    """
    with fileio.atomic_path(path) as temporary:
        temporary.write_bytes(pickle.dumps({"report": report, "coordinates": coordinates},
                                           protocol=pickle.HIGHEST_PROTOCOL))


def load_report(path: Path | str) -> tuple[HealthReport, object]:
    """Return ``(report, map coordinates)`` saved by :func:`save_report`.

    Raises:
        TLToolsError: The file is missing or unreadable (analyse again).
    """
    try:
        saved = pickle.loads(Path(path).read_bytes())
        return saved["report"], saved["coordinates"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError, ImportError) as error:
        raise TLToolsError(f"the saved health report {path} is unreadable ({error}); press Analyse again") from None


def find_running(manager, path: Path | str):
    """Return the unfinished analysis job of ``manager`` that writes ``path`` (see :func:`report_path`), or None."""
    path = str(path)
    return next((job for job in manager.jobs() if job.task == ANALYSIS_TASK and not job.finished
                 and job.options.get("report") == path), None)


def analysis_task(config, dataset, *, log, stop, from_run=None, run_dir=None, report: str, seed: int = 0):
    """Run the health analysis of ``dataset`` as a job: features of ``config``'s backbone, findings, map.

    Called by the job manager like a trainer (``from_run`` and ``run_dir`` are not used: no run is made).

    Args:
        config: The settings whose ``backbone``, ``image_size`` and ``weights`` give the features.
        dataset: The images.
        log: The job's :class:`~tltools.training.TrainingLog`: ``health_stage``, ``health_done``,
            ``health_total`` while it runs, and one message per step.
        stop: The job's stop request, honoured at the next progress report.
        report: Where to save the report (:func:`report_path`).
        seed: Seed of the fold assignment and the map.

    Returns:
        An object with ``metrics`` (empty: an analysis trains no model) and ``summary``: ``report`` (the
        file, or None when stopped), ``stopped``, the number of each finding and the ``seconds`` per step
        (the report's, plus ``map``: the projection, which ``total`` does not include).

    Raises:
        TLToolsError: The backbone is unusable at that size, or the report cannot be written.
    """
    last = {"stage": None, "at": 0.0}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != last["stage"]:
            log.add_message(f"Data health: {stage}…")
        elif now - last["at"] < PROGRESS_EVERY_S and done < total:
            return
        last.update(stage=stage, at=now)
        log.update(health_stage=stage, health_done=int(done), health_total=int(total))

    log.update(phase_name="data health", health_stage="getting the features", health_done=0, health_total=1)
    try:
        found = analyse(dataset, [config.backbone], image_size=config.image_size, weights=config.weights, seed=seed,
                        on_progress=progress, stop=stop)
        progress("drawing the map", 0, 1)
        if stop.requested:
            raise AnalysisStopped("stopped before drawing the map")
        started = time.monotonic()
        coordinates = project(found.combined, seed=seed)
        found.seconds["map"] = round(time.monotonic() - started, 2)
    except AnalysisStopped as stopped:
        log.add_message(f"Data health: {stopped}; nothing saved.")
        return types.SimpleNamespace(metrics={}, summary={"report": None, "stopped": True})
    try:
        save_report(found, coordinates, report)
    except OSError as error:
        raise TLToolsError(fileio.disk_error_message(error, report, variable="TLTOOLS_CACHE")
                           if fileio.is_disk_error(error) else f"could not save the health report {report}: {error}")
    log.update(health_stage="done", health_done=1, health_total=1)
    log.add_message(f"Data health: done in {found.seconds['total']:.1f} s.")
    return types.SimpleNamespace(metrics={}, summary={
        "report": str(report), "stopped": False, "label_issues": len(found.label_issues),
        "duplicates": len(found.duplicates), "outliers": len(found.outliers), "seconds": found.seconds})
