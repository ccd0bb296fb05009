"""``python -m tltools bench`` end to end on a tiny generated dataset."""

import json

import pytest

from tltools.bench import format_report
from tltools.bench.data import generate_dataset
from tltools.bench.run import run_stage
from tltools.cli import main

pytestmark = pytest.mark.slow  # builds, trains or exports real models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """32 generated 64-px JPEGs in 4 classes."""
    return generate_dataset(tmp_path_factory.mktemp("tiny"), images=32, image_size=64, classes=4)


@pytest.fixture(scope="module")
def report(tiny):
    """The benchmark's JSON report, every stage run in this process."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["bench", str(tiny), "--image-size", "64", "--epochs", "1", "--warm-epochs", "2",
                       "--fine-tune-epochs", "1", "--no-isolate", "--json"])
    assert status == 0
    return json.loads(out.getvalue())


def test_every_stage_reports_time_memory_and_accuracy(report):
    assert set(report["stages"]) == {"ceiling", "baseline_frozen", "tltools_frozen_cold", "tltools_frozen_warm",
                                     "baseline_fine_tune", "tltools_fine_tune"}
    for name, result in report["stages"].items():
        assert result["seconds"] > 0 and result["peak_rss_mb"] > 0, name
        assert result["images_per_second"] > 0, name
    for name in ("baseline_frozen", "tltools_frozen_cold", "tltools_frozen_warm", "baseline_fine_tune",
                 "tltools_fine_tune"):
        assert 0 <= report["stages"][name]["val_accuracy"] <= 1, name
    assert report["settings"]["images"] == {"train": 24, "val": 8, "test": 0}
    assert report["machine"]["cores"] >= 1


def test_the_cold_run_fills_the_cache_the_warm_runs_reuse(report):
    stages = report["stages"]
    assert stages["tltools_frozen_cold"]["feature_cache"] == "miss"
    assert stages["tltools_frozen_cold"]["feature_images"] == 32
    assert stages["tltools_frozen_warm"]["feature_cache"] == "hit"
    assert stages["tltools_fine_tune"]["fine_tune_fast_path"] is True
    assert len(stages["baseline_fine_tune"]["epoch_seconds"]) == len(stages["tltools_fine_tune"]["epoch_seconds"]) == 1


def test_ratios_and_targets_are_reported_and_printed(report):
    ratios = report["ratios"]
    assert ratios["frozen_speedup"] > 0 and ratios["extraction_vs_ceiling"] > 0
    assert ratios["fine_tune_epoch_speedup"] > 0 and ratios["scale_peak_rss_mb"] is None
    assert len(report["targets"]) == 7 and report["targets"][-2]["met"] is None  # no scale run
    assert report["targets"][-1]["met"] is None and ratios["auto_budget_share"] is None  # no auto run
    table = format_report(report)
    assert "1. baseline: ImageDataGenerator + fit" in table and "4. ceiling" in table
    assert "warm-cache head retraining" in table


def test_a_stage_runs_in_its_own_process(tiny, tmp_path):
    context = {"data": str(tiny), "backbone": "efficientnet_lite0", "weights": "imagenet", "image_size": 64,
               "batch_size": 8, "seed": 0, "val_fraction": 0.25, "test_fraction": 0.0, "ceiling_images": 16,
               "home": str(tmp_path / "home"), "cache": str(tmp_path / "cache")}
    result = run_stage("ceiling", context, isolate=True)
    assert result["images"] == 16 and result["images_per_second"] > 0 and result["peak_rss_mb"] > 100


def test_the_auto_row_reports_what_auto_mode_chose_within_its_budget(tiny, tmp_path):
    context = {"data": str(tiny), "backbone": "efficientnet_lite0", "weights": "imagenet", "batch_size": 8,
               "seed": 0, "val_fraction": 0.25, "test_fraction": 0.25, "auto_budget": 40.0,
               "home": str(tmp_path / "home"), "cache": str(tmp_path / "cache")}
    result = run_stage("tltools_auto", context, isolate=False)
    assert result["budget_seconds"] == 40.0 and result["trials"] >= 1
    assert 0 <= result["val_accuracy"] <= 1 and 0 <= result["test_accuracy"] <= 1
    assert result["chosen"].startswith("efficientnet_lite0") and result["fine_tuning"] and result["why"]
    report = {"machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "tensorflow": "t", "keras": "k",
                          "load_average_before": [0], "load_average_after": [0]},
              "settings": {"epochs": 1, "warm_epochs": 1, "fine_tune_epochs": 0, "unfreeze": "30", "data": "d",
                           "images": {"train": 1, "val": 1, "test": 1}, "backbone": "b", "weights": "w",
                           "image_size": 64, "batch_size": 8, "auto_budget": 40.0},
              "stages": {"tltools_auto": result}, "targets": []}
    table = format_report(report)
    assert "5. tltools auto mode, 40 s budget" in table and "auto mode chose: efficientnet_lite0" in table
