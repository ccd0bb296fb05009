"""Data-parallel training per worker count: ``python -m tltools bench --workers 1,2 [DATA]``.

Trains the same config once per worker count (1: the ordinary in-process path; N > 1: N Ray
Train workers under ``MultiWorkerMirroredStrategy``, :mod:`tltools.distributed`), each time in a
fresh temporary ``TLTOOLS_HOME`` and ``TLTOOLS_CACHE`` so that feature extraction is part of every
measurement (shared among the workers when there are several). Reports wall time (including
Ray's start), the run's own training seconds, the feature-extraction seconds, images/s and the
validation and test accuracy of each.
"""

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from tltools.errors import TLToolsError


def parse_counts(text: str) -> list[int]:
    """Return the worker counts of ``"1,2,4"``.

    Raises:
        TLToolsError: A count is not a whole number from 1 to 256.
    """
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= count <= 256 for count in counts):
        raise TLToolsError(f"--workers {text!r}: give worker counts from 1 to 256 separated by commas, e.g. 1,2")
    return counts


def run(data: str | None, counts: list[int], config, *, progress=None) -> dict:
    """Train ``config`` on ``data`` once per worker count and return what each took and reached.

    Args:
        data: An image folder; None uses ``../shared/datasets/flowers12`` (required then).
        counts: Worker counts, e.g. ``[1, 2]``.
        config: The :class:`tltools.training.TrainConfig` to train (its ``workers`` is replaced).
        progress: Optional ``callable(text)`` for a line per step.

    Returns:
        ``{"data", "config", "cpus", "load_before", "load_after", "rows": [{"workers", "executor", "wall_s",
        "train_s", "feature_s", "images_per_s", "val_accuracy", "test_accuracy", "epochs_run"}]}``.

    Raises:
        TLToolsError: No data, or a run failed.
    """
    from tltools.bench.data import default_data
    from tltools.data import load_dataset
    from tltools.training import train

    data = data or (str(default_data()) if default_data() else None)
    if data is None:
        raise TLToolsError("bench --workers needs an image folder (../shared/datasets/flowers12 is not there)")
    dataset = load_dataset(data, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                           seed=config.seed)
    train_images = len(dataset.with_splits(config).split("train"))
    rows = []
    load_before = os.getloadavg()[0]
    for count in counts:
        if progress:
            progress(f"training with {count} worker(s)…")
        with _fresh_folders() as root:
            started = time.perf_counter()
            result = train(config.replace(workers=count), dataset, runs_root=root / "runs")
            wall = time.perf_counter() - started
        metrics = result.metrics
        seconds = metrics["train_seconds"]
        rows.append({
            "workers": metrics["workers"], "executor": metrics["executor"], "wall_s": round(wall, 1),
            "train_s": seconds, "feature_s": metrics.get("feature_seconds"),
            "images_per_s": round(train_images * metrics["epochs_run"] / seconds, 1) if seconds else None,
            "val_accuracy": metrics["val"]["accuracy"],
            "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
            "epochs_run": metrics["epochs_run"],
        })
    return {"data": data, "config": config.to_dict(), "cpus": os.cpu_count(), "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2), "rows": rows}


@contextlib.contextmanager
def _fresh_folders():
    """A temporary ``TLTOOLS_HOME`` and ``TLTOOLS_CACHE`` (cold feature cache), restored afterwards."""
    root = Path(tempfile.mkdtemp(prefix="tltools-bench-workers-"))
    saved = {name: os.environ.get(name) for name in ("TLTOOLS_HOME", "TLTOOLS_CACHE")}
    os.environ["TLTOOLS_HOME"], os.environ["TLTOOLS_CACHE"] = str(root / "home"), str(root / "cache")
    try:
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def format_report(report: dict) -> str:
    """The report as a table, with what it can and cannot show."""
    lines = [f"data: {report['data']}  ({report['cpus']} CPUs, load average {report['load_before']} before, "
             f"{report['load_after']} after)",
             f"{'workers':>7}  {'executor':<9} {'wall s':>7} {'train s':>8} {'features s':>10} {'images/s':>9} "
             f"{'val acc':>8} {'test acc':>8} {'epochs':>6}"]
    for row in report["rows"]:
        test = "-" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
        lines.append(f"{row['workers']:>7}  {row['executor']:<9} {row['wall_s']:>7.1f} {row['train_s']:>8.1f} "
                     f"{row['feature_s'] or 0:>10.1f} {row['images_per_s'] or 0:>9.1f} "
                     f"{row['val_accuracy']:>8.4f} {test:>8} {row['epochs_run']:>6}")
    lines.append("images/s: training images x epochs run / the run's training seconds (extraction included). "
                 f"Several workers share {report['cpus']} CPUs here: on one machine without spare cores they "
                 "cannot be faster than one; they pay off with a core or GPU (or a machine) each.")
    return "\n".join(lines)
