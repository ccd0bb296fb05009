"""Latency per format: each export timed at batch 1 in its own runtime, the table kept beside the exports."""

import pytest

from tltools.errors import TLToolsError
from tltools.export.latency import (LATENCY_FILE, format_latency, kept_latency, latency_table,
                                    measure_run_latency, time_call)
from tltools.runs import read_run


@pytest.mark.slow
def test_latency_of_keras_and_tflite_is_measured_and_kept(run):
    report = measure_run_latency(run, ("keras", "tflite"), repeats=3, threads=1)
    rows = {row["format"]: row for row in report["rows"]}
    assert set(rows) == {"keras", "tflite"}
    for row in rows.values():
        assert row["error"] is None
        assert 0 < row["median_ms"] <= row["p90_ms"]
        assert row["size_bytes"] > 0
    assert rows["tflite"]["threads"] == 1 and rows["tflite"]["runtime"] in ("litert", "tflite")
    assert (run / "exports" / LATENCY_FILE).is_file()
    assert kept_latency(read_run(run)) == report
    text = format_latency(report)
    assert "median of 3 runs after 5 warm-up runs" in text and "tflite" in text
    table = latency_table(report)
    assert list(table["format"]) == ["keras", "tflite"] and list(table["threads"]) == ["all", "1"]
    assert "error" not in table and "median ms/image" in table


def test_time_call_counts_warmup_apart():
    calls = []
    median, p90 = time_call(calls.append, __import__("numpy").zeros((2, 2, 3)), repeats=4)
    assert len(calls) == 5 + 4
    assert 0 <= median <= p90


@pytest.mark.slow
def test_unknown_format_and_bad_repeats_are_refused(tmp_path):
    with pytest.raises(TLToolsError, match="cannot time the format 'h5'"):
        measure_run_latency(tmp_path, ("h5",))
    with pytest.raises(TLToolsError, match="repeats=0 must be at least 1"):
        measure_run_latency(tmp_path, repeats=0)


def test_missing_run_is_one_line(tmp_path):
    with pytest.raises(TLToolsError, match="no training run at"):
        measure_run_latency(tmp_path / "nope")
