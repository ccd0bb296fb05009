"""What a worker process costs a job: ``python -m tltools bench --job-start N [DATA]`` (or ``python -m tltools.bench.job_start``).

Without DATA (and without ../shared): submit-to-completed seconds of a job whose trainer only logs one epoch, on a thread of
this process and in a warm worker process (the overhead of a process job). With DATA: the same for a
warm-cache head retrain (20 epochs, a new learning rate each time, efficientnet_lite0 at 224 px, the
benchmark's settings) after one run has filled the feature cache: what the user waits for after moving
the learning-rate slider and pressing Start. The warm worker is measured once it is ready, after one
untimed job through the manager (as in the app, where the previous run's end starts it and builds that
run's model ahead). Also with a fresh (not warm) worker. Prints JSON.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import types
from pathlib import Path


def one_epoch(config, dataset, *, log, stop, from_run, run_dir):
    """A stand-in trainer (importable by name): logs one epoch and returns."""
    log.add_epoch({"epoch": 1, "loss": 1.0})
    return types.SimpleNamespace(metrics={"pid": os.getpid()})


def _config(learning_rate: float, data: bool):
    from tltools.data.augment import AugmentOptions
    from tltools.training import TrainConfig

    if not data:
        return TrainConfig(epochs=1)
    return TrainConfig(backbone="efficientnet_lite0", image_size=224, batch_size=32, epochs=20,
                       learning_rate=learning_rate, seed=42, val_fraction=0.15, test_fraction=0.25,
                       early_stopping_patience=0, augment=AugmentOptions())


def measure(data: str | None, repeats: int, root: Path) -> dict:
    """Return ``{"thread": [...], "warm process": [...], "fresh process": [...]}`` seconds per job."""
    from tltools import jobs
    from tltools.training import train

    dataset, trainer = "data", "tltools.bench.job_start:one_epoch"
    if data:
        from tltools.data import load_dataset

        dataset = load_dataset(data, val_fraction=0.15, test_fraction=0.25, seed=42)
        trainer = train
        train(_config(1e-3, True), dataset, runs_root=root)  # fills the feature cache
    results = {}
    for name, processes, warm in (("thread", False, False), ("warm process", True, True),
                                  ("fresh process", True, False)):
        manager = jobs.JobManager(runs_root=root, trainer=trainer, processes=processes, warm=warm)
        if warm and data:  # as in the app: the run before went through a worker, whose end warms the next
            manager.wait_warm(300)
            manager.wait(manager.submit(_config(1e-3, True), dataset).job_id, timeout=900)
        seconds = []
        for n in range(repeats):
            if warm:
                manager.wait_warm(300)
            started = time.perf_counter()
            job = manager.submit(_config(3e-3 * (n + 1), bool(data)), dataset)
            manager.wait(job.job_id, timeout=900)
            seconds.append(round(time.perf_counter() - started, 2))
            if job.status != "completed":
                raise RuntimeError(f"{name} job failed: {job.error}")
        manager.close()
        results[name] = {"seconds": seconds, "median": statistics.median(seconds)}
    return results


def run(data: str | None, repeats: int) -> dict:
    """Measure in a temporary folder with its own cold feature cache (the warm-up run fills it).

    Args:
        data: An image folder; None uses ``../shared/datasets/flowers12`` when present, else the stand-in
            trainer only (what the process hand-off costs).
        repeats: Jobs per way of running.

    Returns:
        ``{"data", "results": {way: {"seconds", "median"}}, "load_before", "load_after"}``.
    """
    from tltools.bench.data import default_data

    data = data or (str(default_data()) if default_data() else None)
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        saved = os.environ.get("TLTOOLS_CACHE")
        os.environ["TLTOOLS_CACHE"] = str(Path(root) / "cache")  # the workers inherit it
        try:
            results = measure(data, repeats, Path(root))
        finally:
            if saved is None:
                os.environ.pop("TLTOOLS_CACHE", None)
            else:
                os.environ["TLTOOLS_CACHE"] = saved
    return {"data": data, "results": results, "load_before": before, "load_after": os.getloadavg()}


def format_report(report: dict) -> str:
    """The report as a few lines of text: each way's seconds and median."""
    what = (f"warm-cache retrain of {report['data']} (efficientnet_lite0, 224 px, 20 epochs, new learning rate)"
            if report["data"] else "a stand-in job that logs one epoch")
    lines = [f"Start to saved model, {what}:"]
    for way, found in report["results"].items():
        lines.append(f"  {way:14} median {found['median']:6.2f} s   each: "
                     + ", ".join(f"{seconds:.2f}" for seconds in found["seconds"]))
    lines.append("load average before {:.1f}, after {:.1f}".format(report["load_before"][0], report["load_after"][0]))
    return "\n".join(lines)


def main() -> int:
    """Parse the arguments, measure, print JSON; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="an image folder (e.g. ../shared/datasets/flowers12)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
