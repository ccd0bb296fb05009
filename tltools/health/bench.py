"""Measurements of the health analysis (README, Data health): ``python -m tltools.health.bench [DATA…] [--json]``.

- **Label errors**: 5 % of the training images' labels (the data's own ``train`` split, or
  train + val where the split is drawn) are flipped to another class at random (seeded); the
  out-of-fold heads and cleanlab rank those images; reported are the precision and recall of the
  flipped ones among the ``2 × flipped`` lowest label-quality scores, per feature set.
- **Duplicates**: the data is copied to a temporary folder, 10 images (seeded) get a JPEG
  quality-70 copy and a 0.8× resized copy under new names in another split; every copy must be
  found as a near duplicate of its original, and on the untouched data no group may be reported
  beyond the identical files it really has.
- **Time**: the whole :func:`~tltools.health.analysis.analyse` with the features cached (warm) and
  with an empty feature cache (cold, in a temporary ``TLTOOLS_CACHE``).
- **Job**: the analysis as the Data health page runs it: submitted as a job to a warm worker process,
  analysis and map there, the saved report loaded back (features cached).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tltools.data import load_dataset
from tltools.health import label_issues
from tltools.health.analysis import DEFAULT_BACKBONES, analyse
from tltools.health.features import Features, dataset_features

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def flipped_labels(labels: np.ndarray, classes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (noisy labels, indices flipped): ``fraction`` of the labels moved to another class at random."""
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(labels)))
    chosen = np.sort(rng.choice(len(labels), size=count, replace=False))
    noisy = labels.copy()
    noisy[chosen] = (labels[chosen] + rng.integers(1, classes, size=count)) % classes
    return noisy, chosen


def label_error_scores(features: Features, *, fraction: float = 0.05, seed: int = 0, c: float | None = None) -> dict:
    """Flip ``fraction`` of the training labels and return how well the ranking finds them.

    Returns:
        ``flipped``, ``top`` (2 × flipped), ``precision``, ``recall``, ``flagged`` (cleanlab's own count),
        ``flagged_precision``, ``flagged_recall``, ``seconds`` (out-of-fold heads and ranking).
    """
    table = features.table
    given = table["given_split"].to_numpy()
    train = np.flatnonzero(given == "train") if (given == "train").any() else \
        np.flatnonzero(table["split"].isin(["train", "val"]).to_numpy())
    labels = table["label_index"].to_numpy()[train]
    noisy, chosen = flipped_labels(labels, int(table["label_index"].max()) + 1, fraction, seed)
    views = [view[train] for view in features.views()]
    started = time.time()
    probabilities = label_issues.out_of_fold_probabilities(views, noisy, seed=seed,
                                                           **({} if c is None else {"c": c}))
    ranked = label_issues.ranked_by_quality(noisy, probabilities)
    flagged = [issue.index for issue in label_issues.find_issues(noisy, probabilities)]
    seconds = time.time() - started
    top = ranked[:2 * len(chosen)]
    hits = len(set(top) & set(chosen))
    flagged_hits = len(set(flagged) & set(chosen))
    return {"images": len(train), "flipped": len(chosen), "top": len(top), "precision": round(hits / len(top), 3),
            "recall": round(hits / len(chosen), 3), "flagged": len(flagged),
            "flagged_precision": round(flagged_hits / max(len(flagged), 1), 3),
            "flagged_recall": round(flagged_hits / len(chosen), 3), "seconds": round(seconds, 2)}


def duplicate_check(data: Path, backbones, *, copies: int = 10, seed: int = 0) -> dict:
    """Add re-encoded and resized copies of ``copies`` images in other splits and check each is found."""
    untouched = analyse(load_dataset(data), backbones)
    real = [group for group in untouched.duplicates]
    view = untouched.features.views()[0]
    similarity = view @ view.T
    same_bytes = untouched.table["sha1"].to_numpy()
    similarity[same_bytes[:, None] == same_bytes[None, :]] = -1  # identical files and each image itself
    highest_other = float(similarity.max())
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / data.name
        shutil.copytree(data, copy)
        dataset = load_dataset(copy)
        rng = np.random.default_rng(seed)
        table = dataset.items.sort_values("relpath").reset_index(drop=True)
        chosen = table.iloc[np.sort(rng.choice(len(table), size=copies, replace=False))]
        expected = []
        for row in chosen.itertuples():
            relpath = Path(row.relpath)
            parts = relpath.parts
            image = Image.open(copy / relpath).convert("RGB")
            for kind in ("q70", "resized"):
                if dataset.layout == "pre-split":
                    other = "test" if parts[0] != "test" else "train"
                    target = Path(other, *parts[1:-1], f"{relpath.stem}-{kind}.jpg")
                else:
                    target = relpath.with_name(f"{relpath.stem}-{kind}.jpg")
                (copy / target).parent.mkdir(parents=True, exist_ok=True)
                if kind == "q70":
                    image.save(copy / target, "JPEG", quality=70)
                else:
                    image.resize((round(image.width * 0.8), round(image.height * 0.8)), Image.Resampling.LANCZOS).save(
                        copy / target, "JPEG", quality=95)
                expected.append((row.relpath, target.as_posix()))
        report = analyse(load_dataset(copy), backbones)
        groups = [set(report.table["relpath"].iloc[list(group.indices)]) for group in report.duplicates]
        found = sum(any({a, b} <= group for group in groups) for a, b in expected)
        view, row = report.features.views()[0], {path: i for i, path in enumerate(report.table["relpath"])}
        lowest = min(float(view[row[a]] @ view[row[b]]) for a, b in expected)
    return {"copies": len(expected), "found": found, "lowest_copy_similarity": round(lowest, 4),
            "highest_other_similarity": round(highest_other, 4),
            "groups_on_untouched": [{"paths": [untouched.table["relpath"].iat[i] for i in g.indices], "kind": g.kind,
                                     "similarity": g.similarity} for g in real]}


def timing(data: Path, backbones) -> dict:
    """Return seconds of the whole analysis warm (features cached) and cold (empty cache)."""
    dataset = load_dataset(data)
    analyse(dataset, backbones)  # fill the cache
    started = time.time()
    warm = analyse(dataset, backbones)
    warm_seconds = time.time() - started
    saved = os.environ.get("TLTOOLS_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TLTOOLS_CACHE"] = cache
        try:
            started = time.time()
            cold = analyse(dataset, backbones)
            cold_seconds = time.time() - started
        finally:
            if saved is None:
                os.environ.pop("TLTOOLS_CACHE", None)
            else:
                os.environ["TLTOOLS_CACHE"] = saved
    return {"warm_seconds": round(warm_seconds, 2), "warm_stages": warm.seconds,
            "cold_seconds": round(cold_seconds, 2), "cold_feature_seconds": cold.seconds["features"]}


def job_timing(data: Path, backbones, *, repeats: int = 3) -> dict:
    """Return seconds from submitting the analysis as a job (:data:`~tltools.health.task.ANALYSIS_TASK`) to its report
    loaded back, through a warm worker process, with the features cached: what the Data health page waits.

    Each repeat waits for a warm worker first (each worker runs one job). Returned: ``submit_to_report_seconds``
    (per repeat: submit, the worker's analysis and map, the report file loaded), ``in_worker_seconds`` (the
    analysis' own total as the worker measured it, without the map), ``map_seconds`` (the worker's t-SNE) and
    ``load_seconds`` (reading the file).
    """
    from tltools.health import task
    from tltools.jobs import JobManager
    from tltools.training import TrainConfig

    dataset = load_dataset(data)
    analyse(dataset, backbones)  # the features cached, as after a first run or analysis
    settings = TrainConfig(backbone=backbones[0])
    totals, inside, maps, loads = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        manager = JobManager(processes=True, runs_root=Path(folder) / "runs")
        try:
            for repeat in range(repeats):
                if not manager.wait_warm():
                    raise RuntimeError("no warm worker process became ready")
                report = Path(folder) / f"report-{repeat}.pkl"
                started = time.time()
                job = manager.submit(settings, dataset, task=task.ANALYSIS_TASK, options={"report": str(report)})
                manager.wait(job.job_id, timeout=600)
                if job.status != "completed":
                    raise RuntimeError(f"the analysis job ended {job.status}: {job.error}")
                loaded = time.time()
                task.load_report(job.summary["report"])
                done = time.time()
                totals.append(round(done - started, 2))
                loads.append(round(done - loaded, 2))
                inside.append(job.summary["seconds"]["total"])
                maps.append(job.summary["seconds"]["map"])
        finally:
            manager.close()
    return {"submit_to_report_seconds": totals, "in_worker_seconds": inside, "map_seconds": maps, "load_seconds": loads}


def main(argv=None) -> int:
    """Run the measurements; print a JSON object per dataset (or the readable summary)."""
    parser = argparse.ArgumentParser(prog="python -m tltools.health.bench", description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", help="dataset folders (default: ../shared/datasets/flowers12 and clothing10)")
    parser.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES), help="comma-separated feature backbones")
    parser.add_argument("--flip", action="store_true", help="also mirrored-image features (test-time augmentation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["labels", "duplicates", "time", "job"], action="append",
                        help="run only these measurements (repeatable)")
    args = parser.parse_args(argv)
    datas = [Path(d) for d in args.data] or [SHARED / "flowers12", SHARED / "clothing10"]
    backbones = args.backbones.split(",")
    only = set(args.only or ["labels", "duplicates", "time", "job"])
    for data in datas:
        result = {"data": str(data), "backbones": backbones, "flip": args.flip}
        if "labels" in only:
            features = dataset_features(load_dataset(data), backbones, flip=args.flip)
            result["label_errors"] = label_error_scores(features, seed=args.seed)
        if "duplicates" in only:
            result["duplicates"] = duplicate_check(data, backbones, seed=args.seed)
        if "time" in only:
            result["time"] = timing(data, backbones)
        if "job" in only:
            result["job"] = job_timing(data, backbones)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
