"""``python -m tltools bench --workers 1,2``: parsing, the report, and one measured row."""

import pytest

from tests.factories import fast_config
from tltools.bench import workers
from tltools.errors import TLToolsError


def test_worker_counts_are_parsed_and_bad_ones_refused_in_one_line():
    assert workers.parse_counts("1,2") == [1, 2]
    assert workers.parse_counts(" 4 ") == [4]
    for bad in ("", "0", "1,x", "300"):
        with pytest.raises(TLToolsError, match="give worker counts from 1 to 256"):
            workers.parse_counts(bad)


def test_the_report_says_what_two_workers_on_few_cores_cannot_do():
    row = {"workers": 2, "executor": "ray-mwms", "wall_s": 80.0, "train_s": 60.0, "feature_s": 20.0,
           "images_per_s": 12.5, "val_accuracy": 0.9, "test_accuracy": None, "epochs_run": 5}
    text = workers.format_report({"data": "d", "cpus": 2, "load_before": 1.0, "load_after": 2.0, "rows": [row]})
    assert "ray-mwms" in text and "0.9000" in text and "cannot be faster" in text


@pytest.mark.slow
def test_one_row_per_worker_count_from_a_cold_cache(colours_dir):
    report = workers.run(str(colours_dir), [1], fast_config(epochs=2))
    (row,) = report["rows"]
    assert row["workers"] == 1 and row["executor"] == "local" and row["epochs_run"] == 2
    assert row["feature_s"] > 0 and row["images_per_s"] > 0 and 0 <= row["val_accuracy"] <= 1
