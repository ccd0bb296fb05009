"""Cleaning old and over-budget datasets and caches: oldest first, never what is in use, never runs.

Fake items of a few bytes, aged with ``os.utime``; sizes in the budgets are bytes.
"""

import gc
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.factories import class_images, zip_bytes
from tltools import housekeeping, runs
from tltools.data import load_dataset
from tltools.data.array_store import npy_writer
from tltools.errors import TLToolsError
from tltools.housekeeping import Budget, clean, lease_dataset
from tltools.training import feature_cache

DAY = 86_400
ROOMY = {"datasets_max_bytes": 10**9, "cache_max_bytes": 10**9}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TLTOOLS_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "datasets").mkdir(parents=True)
    return tmp_path / "home"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TLTOOLS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def age(path: Path, days: float) -> Path:
    """Set the modification (and access) time of ``path`` to ``days`` ago."""
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


def make_dataset(home: Path, name: str, *, days: float, size: int = 100, manifest: bool = True) -> Path:
    """An extracted upload: ``datasets/<name>/cls/0.bin`` of ``size`` bytes (+ manifest), last used ``days`` ago."""
    folder = home / "datasets" / name
    (folder / "cls").mkdir(parents=True)
    (folder / "cls" / "0.bin").write_bytes(b"x" * size)
    if manifest:
        folder.with_name(f"{name}.json").write_text(json.dumps({"source": f"{name}.zip", "skipped": []}))
        age(folder.with_name(f"{name}.json"), days)
    return age(folder, days)


def make_features(cache: Path, stem: str, *, days: float, size: int = 100) -> Path:
    folder = cache / "features"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.npy").write_bytes(b"f" * size)
    (folder / f"{stem}.json").write_text("{}")
    age(folder / f"{stem}.npy", days + 0.001)
    age(folder / f"{stem}.json", days)  # a hit refreshes the description: that is the entry's last use
    return folder / f"{stem}.npy"


def make_decoded(cache: Path, name: str, *, days: float, size: int = 100) -> Path:
    folder = cache / "decoded"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"d" * size)
    return age(folder / name, days)


def make_run(home: Path, run_id: str, *, status: str, dataset_root: Path, **owner) -> Path:
    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    state = {"status": status, "error": None, "created_at": "2025-01-01T00:00:00", "finished_at": None, **owner}
    (folder / "status.json").write_text(json.dumps(state))
    (folder / "dataset.json").write_text(json.dumps({"root": str(dataset_root)}))
    (folder / "model.keras").write_bytes(b"m" * 1000)
    for path in folder.iterdir():
        age(path, 400)
    return age(folder, 400)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` with its content digest (files) and modification time."""
    return {path.relative_to(folder).as_posix(): (
        hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir", path.stat().st_mtime)
        for path in sorted(folder.rglob("*"))}


def ended_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def removed(report) -> list[str]:
    return [item.path.name for item in report.removed]


def test_items_unused_past_the_age_limit_go_and_the_others_stay(home, cache):
    make_dataset(home, "old-1111111111111111", days=40)
    make_dataset(home, "recent-2222222222222222", days=3)
    make_features(cache, "old-features", days=31)
    make_features(cache, "recent-features", days=1)
    make_decoded(cache, "old-64.npy", days=45)
    make_decoded(cache, "recent-64.npy", days=2)

    report = clean(Budget(max_age_days=30, **ROOMY))

    assert sorted(removed(report)) == ["old-1111111111111111", "old-64.npy", "old-features.npy"]
    assert sorted(path.name for path in (home / "datasets").iterdir()) == ["recent-2222222222222222", "recent-2222222222222222.json"]
    assert sorted(path.name for path in (cache / "features").iterdir()) == ["recent-features.json",
                                                                            "recent-features.npy"]
    assert [path.name for path in (cache / "decoded").iterdir()] == ["recent-64.npy"]
    assert all("unused for" in item.reason for item in report.removed)


def test_an_area_over_budget_loses_its_least_recently_used_items_first(home, cache):
    for name, days in (("newest-3333333333333333", 2), ("oldest-1111111111111111", 9), ("middle-2222222222222222", 5)):
        make_dataset(home, name, days=days, size=1000)

    report = clean(Budget(datasets_max_bytes=1500, cache_max_bytes=10**9, max_age_days=30))

    assert removed(report) == ["oldest-1111111111111111", "middle-2222222222222222"]
    assert "over its 1.5 KiB budget" in report.removed[0].reason
    assert sorted(path.name for path in (home / "datasets").iterdir()) == ["newest-3333333333333333", "newest-3333333333333333.json"]
    assert report.areas["datasets"]["bytes_after"] <= 1500 < report.areas["datasets"]["bytes_before"]


def test_the_cache_budget_covers_features_and_decoded_images_together(home, cache):
    make_features(cache, "features-a", days=6, size=1000)
    make_decoded(cache, "decoded-b-64.npy", days=4, size=1000)
    make_features(cache, "features-c", days=2, size=1000)

    report = clean(Budget(datasets_max_bytes=10**9, cache_max_bytes=2100, max_age_days=30))

    assert removed(report) == ["features-a.npy"]
    assert not (cache / "features" / "features-a.json").exists()


def test_a_dataset_leased_by_a_live_process_stays(home, cache):
    mine = make_dataset(home, "mine-1111111111111111", days=90)
    theirs = make_dataset(home, "theirs-2222222222222222", days=90)
    lease = lease_dataset(mine / "cls")  # a root inside the extracted folder leases the whole folder
    age(mine, 90)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (home / "datasets" / f"theirs-2222222222222222.lease-{other.pid}").write_text(json.dumps({"pid": other.pid}))

        report = clean(Budget(datasets_max_bytes=0, cache_max_bytes=0, max_age_days=1))
    finally:
        other.kill()
        other.wait()

    assert mine.is_dir() and theirs.is_dir() and removed(report) == []
    reasons = {item.path.name: item.reason for item in report.kept}
    assert reasons == {"mine-1111111111111111": f"in use: leased by process {os.getpid()}",
                       "theirs-2222222222222222": f"in use: leased by process {other.pid}"}
    lease.release()
    assert not (home / "datasets" / f"mine-1111111111111111.lease-{os.getpid()}").exists()


def test_leases_of_ended_processes_are_ignored_and_removed(home, cache):
    folder = make_dataset(home, "orphaned-1111111111111111", days=90)
    pid = ended_pid()
    stale = home / "datasets" / f"orphaned-1111111111111111.lease-{pid}"
    stale.write_text(json.dumps({"pid": pid}))

    report = clean(Budget(max_age_days=30, **ROOMY))

    assert not folder.exists() and not stale.exists()
    assert {item.kind for item in report.removed} == {"dataset", "lease"}


def test_a_dataset_read_by_a_running_run_stays_and_one_of_an_interrupted_run_goes(home, cache):
    live = make_dataset(home, "live-1111111111111111", days=90)
    dead = make_dataset(home, "dead-2222222222222222", days=90)
    make_run(home, "run-live", status=runs.RUNNING, dataset_root=live / "cls", **runs.owner_record())
    make_run(home, "run-dead", status=runs.RUNNING, dataset_root=dead, pid=ended_pid())

    report = clean(Budget(max_age_days=30, **ROOMY))

    assert live.is_dir() and not dead.exists()
    assert [(item.path.name, item.reason) for item in report.kept] == [
        ("live-1111111111111111", "in use: read by the running run run-live")]


def test_anything_used_within_the_last_hour_stays_even_over_budget(home, cache):
    make_dataset(home, "just-used-1111111111111111", days=0.01, size=1000)
    make_features(cache, "just-used", days=0.01, size=1000)

    report = clean(Budget(datasets_max_bytes=0, cache_max_bytes=0, max_age_days=0))

    assert removed(report) == []
    assert {item.reason for item in report.kept} == {"in use: used within the last hour"}
    assert report.areas["datasets"]["bytes_after"] > 0


def test_a_dry_run_reports_but_deletes_nothing(home, cache):
    make_dataset(home, "old-1111111111111111", days=40)
    make_features(cache, "old-features", days=40)
    (home / "datasets" / ".half-4444444444444444.abc").mkdir()
    age(home / "datasets" / ".half-4444444444444444.abc", 1)
    before = snapshot(home), snapshot(cache)

    report = clean(Budget(max_age_days=30, **ROOMY), dry_run=True)

    assert sorted(removed(report)) == [".half-4444444444444444.abc", "old-1111111111111111", "old-features.npy"]
    assert report.dry_run and report.freed_bytes > 0
    assert (snapshot(home), snapshot(cache)) == before


def test_runs_are_never_touched(home, cache):
    dataset = make_dataset(home, "data-1111111111111111", days=400)
    make_run(home, "20240101-000000-efficientnet_lite0-aaaaaa", status=runs.COMPLETED, dataset_root=dataset)
    make_run(home, "20240101-000000-efficientnet_lite0-bbbbbb", status=runs.FAILED, dataset_root=dataset)
    (home / "runs" / "20240101-000000-efficientnet_lite0-aaaaaa" / ".model.0123.tmp.keras").write_bytes(b"t")
    age(home / "runs" / "20240101-000000-efficientnet_lite0-aaaaaa" / ".model.0123.tmp.keras", 400)
    before = snapshot(home / "runs")

    clean(Budget(datasets_max_bytes=0, cache_max_bytes=0, max_age_days=0))

    assert snapshot(home / "runs") == before
    assert not dataset.exists()


def test_partial_leftovers_older_than_an_hour_go_and_fresh_ones_stay(home, cache):
    datasets = home / "datasets"
    (datasets / ".upload-1111111111111111.k3j2" / "cat").mkdir(parents=True)  # an extraction's staging folder
    (datasets / ".upload-1111111111111111.k3j2" / "cat" / "0.png").write_bytes(b"p")
    for path in (datasets / ".upload-1111111111111111.k3j2" / "cat" / "0.png", datasets / ".upload-1111111111111111.k3j2" / "cat",
                 datasets / ".upload-1111111111111111.k3j2"):
        age(path, 2 / 24)
    (datasets / ".upload-2222222222222222.json.77.tmp").write_text("{")  # a manifest being written
    age(datasets / ".upload-2222222222222222.json.77.tmp", 2 / 24)
    (datasets / "gone-3333333333333333.json").write_text("{}")  # a manifest whose folder is gone
    age(datasets / "gone-3333333333333333.json", 2 / 24)
    (datasets / ".in-progress-4444.abcd").mkdir()  # still being written
    make_features(cache, "complete", days=2 / 24)
    (cache / "features" / "lone.npy").write_bytes(b"n")  # an array whose description never came
    age(cache / "features" / "lone.npy", 2 / 24)
    (cache / "decoded").mkdir()
    (cache / "decoded" / ".abc-64.npy.x1y2.npy").write_bytes(b"d")
    age(cache / "decoded" / ".abc-64.npy.x1y2.npy", 2 / 24)
    (cache / "decoded" / ".def-64.npy.z3.npy").write_bytes(b"d")  # being written right now

    report = clean(Budget(max_age_days=30, **ROOMY))

    assert sorted(removed(report)) == [".abc-64.npy.x1y2.npy", ".upload-1111111111111111.k3j2", ".upload-2222222222222222.json.77.tmp",
                                       "gone-3333333333333333.json", "lone.npy"]
    assert {item.kind for item in report.removed} == {"partial"}
    assert sorted(path.name for path in datasets.iterdir()) == [".in-progress-4444.abcd"]
    assert sorted(path.name for path in (cache / "features").iterdir()) == ["complete.json", "complete.npy"]
    assert [path.name for path in (cache / "decoded").iterdir()] == [".def-64.npy.z3.npy"]


def test_a_staging_folder_still_being_filled_is_not_a_leftover(home, cache):
    staging = home / "datasets" / ".big-1111111111111111.abcd"
    (staging / "cat").mkdir(parents=True)
    age(staging, 1)
    (staging / "cat" / "1.png").write_bytes(b"new")  # written just now, deep inside

    assert removed(clean(Budget(max_age_days=30, **ROOMY))) == []


def test_backbones_and_unknown_files_are_left_alone(home, cache):
    (cache / "backbones").mkdir(parents=True)
    (cache / "backbones" / "weights.h5").write_bytes(b"w")
    age(cache / "backbones" / "weights.h5", 400)
    datasets = home / "datasets"
    # TLTOOLS_HOME defaults to the current folder, whose datasets/ may be the user's own.
    for name in ("notes.txt", ".gitkeep", "coco_annotations.json", "cats-2024.tmp", ".cats-2024.tmp"):
        (datasets / name).write_text("mine")
        age(datasets / name, 400)
    for name in ("my_photos", ".dvc", "flowers-2024"):
        (datasets / name / "cat").mkdir(parents=True)
        (datasets / name / "cat" / "1.jpg").write_bytes(b"j" * 100)
        age(datasets / name, 400)
    before = snapshot(home)

    report = clean(Budget(datasets_max_bytes=0, cache_max_bytes=0, max_age_days=0))

    assert (cache / "backbones" / "weights.h5").is_file()
    assert snapshot(home) == before, "nothing tltools did not extract itself is touched"
    assert not report.removed


@pytest.mark.slow
def test_loading_an_earlier_upload_marks_it_used_and_leases_it_while_the_dataset_lives(home, cache):
    data = zip_bytes(class_images())
    first = load_dataset(data)
    folder = first.root
    del first
    gc.collect()
    assert not list(folder.parent.glob("*.lease-*")), "a dropped dataset keeps no lease"
    age(folder, 60)

    dataset = load_dataset(data)  # the same archive again: the extracted folder is reused
    resplit = dataset.with_splits(val_fraction=0.5, test_fraction=0.0, seed=3)
    del dataset

    assert time.time() - folder.stat().st_mtime < 60, "reusing the folder marks it used now"
    age(folder, 60)
    age(folder.with_name(folder.name + ".json"), 60)
    kept = clean(Budget(max_age_days=30, **ROOMY))
    assert folder.is_dir() and [item.reason for item in kept.kept] == [f"in use: leased by process {os.getpid()}"]

    del resplit  # the last copy goes: so does the lease
    gc.collect()
    assert removed(clean(Budget(max_age_days=30, **ROOMY))) == [folder.name]
    assert not folder.exists() and not folder.with_name(folder.name + ".json").exists()


def test_a_folder_outside_the_datasets_folder_is_never_leased(tmp_path, home):
    (tmp_path / "mine").mkdir()
    assert lease_dataset(tmp_path / "mine") is None


def test_a_feature_cache_hit_and_a_decoded_cache_hit_mark_the_entry_used(home, cache, colours):
    key = feature_cache.FeatureKey("f" * 64, "touch-test", {"images": 2, "feature_shape": [3]})
    with npy_writer(key.npy_path, (2, 3), np.float32) as out:
        out.write(0, np.ones((2, 3), np.float32))
    key.json_path.write_text(json.dumps({"digest": key.digest}))
    age(key.json_path, 10)
    assert feature_cache.load_features(key) is not None
    assert time.time() - key.json_path.stat().st_mtime < 60

    from tltools.data import pipeline

    decoded = pipeline.decode_images(colours.paths("val"), 16, memory_budget=0, cache_key="touch-test")
    decoded.close()
    age(decoded.path, 10)
    pipeline.decode_images(colours.paths("val"), 16, memory_budget=0, cache_key="touch-test").close()
    assert time.time() - decoded.path.stat().st_mtime < 60


@pytest.mark.parametrize("variable", ["TLTOOLS_DATASETS_MAX_BYTES", "TLTOOLS_CACHE_MAX_BYTES",
                                      "TLTOOLS_MAX_AGE_DAYS"])
def test_budgets_come_from_the_environment_and_bad_values_are_named(monkeypatch, variable):
    monkeypatch.setenv(variable, "12")
    field = variable.removeprefix("TLTOOLS_").lower()
    assert getattr(Budget.from_env(), field) == 12
    monkeypatch.setenv(variable, "lots")
    with pytest.raises(TLToolsError, match=f"{variable}='lots'"):
        Budget.from_env()
    monkeypatch.setenv(variable, "-1")
    with pytest.raises(TLToolsError, match=variable):
        Budget.from_env()


def test_the_default_budgets():
    assert Budget() == Budget(datasets_max_bytes=20 * 1024**3, cache_max_bytes=10 * 1024**3, max_age_days=30)


def test_automatic_cleaning_runs_at_most_once_an_interval(home, cache, monkeypatch):
    monkeypatch.setattr(housekeeping, "_last_attempt", {})
    old = make_dataset(home, "old-1111111111111111", days=400)

    thread = housekeeping.maybe_clean()
    assert thread is not None
    thread.join(30)
    assert not old.exists() and (cache / housekeeping.STAMP_FILE).is_file()

    again = make_dataset(home, "old-2222222222222222", days=400)
    monkeypatch.setattr(housekeeping, "_last_attempt", {})  # as a new process would: only the stamp says
    assert housekeeping.maybe_clean() is None
    assert again.exists()
    age(cache / housekeeping.STAMP_FILE, 2 / 24)  # an hour and more later
    monkeypatch.setattr(housekeeping, "_last_attempt", {})
    housekeeping.maybe_clean().join(30)
    assert not again.exists()


def test_automatic_cleaning_never_raises(home, cache, monkeypatch, caplog):
    monkeypatch.setattr(housekeeping, "_last_attempt", {})
    monkeypatch.setenv("TLTOOLS_MAX_AGE_DAYS", "soon")
    with caplog.at_level(logging.WARNING, logger="tltools.housekeeping"):
        assert housekeeping.maybe_clean() is None
    assert "TLTOOLS_MAX_AGE_DAYS" in caplog.text

    monkeypatch.delenv("TLTOOLS_MAX_AGE_DAYS")
    monkeypatch.setattr(housekeeping, "_last_attempt", {})
    monkeypatch.setattr(housekeeping, "clean", lambda *args, **kwargs: 1 / 0)
    with caplog.at_level(logging.WARNING, logger="tltools.housekeeping"):
        housekeeping.maybe_clean().join(30)
    assert "automatic cleanup failed" in caplog.text


def test_a_dataset_that_cannot_be_deleted_is_reported_not_raised(home, cache, monkeypatch):
    make_dataset(home, "stuck-1111111111111111", days=400)

    def refuse(source, destination):
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr(housekeeping.os, "rename", refuse)
    report = clean(Budget(max_age_days=30, **ROOMY))

    assert removed(report) == [] and "stuck-1111111111111111" in report.errors[0] and "Permission denied" in report.errors[0]


def test_saved_dataset_versions_and_the_uploads_they_are_built_on_are_never_cleaned(home, cache):
    import pandas as pd

    from tests.health.data import write_health_set
    from tltools.data import load_dataset
    from tltools.health import versions

    original = home / "datasets" / "shapes-1111111111111111"
    write_health_set(original, per_class=3)
    folder = versions.write_version(load_dataset(original), pd.DataFrame(
        [("squares/wrong.png", "squares", "circles", "relabel", "fix")], columns=versions.COLUMNS))
    assert folder.parent == home / "datasets"
    other = make_dataset(home, "other-2222222222222222", days=90)
    for path in (original, folder, folder.with_name(folder.name + ".json"), *folder.iterdir(), *original.rglob("*")):
        age(path, 90)

    report = clean(Budget(max_age_days=30, datasets_max_bytes=0, cache_max_bytes=0))

    assert not other.exists(), "an upload no version uses still goes"
    assert (folder / versions.CHANGES_FILE).is_file() and original.is_dir()
    assert [(item.path.name, item.reason) for item in report.kept] == [
        (original.name, f"in use: the original images of the saved dataset version {folder.name}")]
    assert load_dataset(folder).items.set_index("relpath").at["squares/wrong.png", "label"] == "circles"


def test_old_health_reports_go_with_the_cache(home, cache):
    reports = cache / "health"
    reports.mkdir(parents=True)
    old, fresh = reports / "a.pkl", reports / "b.pkl"
    old.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 100)
    age(old, 90)

    report = clean(Budget(max_age_days=30, **ROOMY))

    assert removed(report) == ["a.pkl"] and report.removed[0].kind == "health"
    assert not old.exists() and fresh.exists()
