"""``python -m tltools bench --job-start N``: Start to saved model through the job runner, each way a job can run."""

import json

import pytest

from tltools.bench import job_start
from tltools.cli import main


def test_the_cli_prints_each_way_with_its_median_and_the_load(monkeypatch, capsys):
    seen = {}

    def fake_measure(data, repeats, root):
        seen.update(data=data, repeats=repeats)
        return {"thread": {"seconds": [3.0, 5.0], "median": 4.0},
                "warm process": {"seconds": [4.5, 4.7], "median": 4.6}}

    monkeypatch.setattr(job_start, "measure", fake_measure)
    assert main(["bench", "--job-start", "2", "some/images"]) == 0
    printed = capsys.readouterr().out
    assert seen == {"data": "some/images", "repeats": 2}
    assert "Start to saved model, warm-cache retrain of some/images" in printed
    assert "thread         median   4.00 s   each: 3.00, 5.00" in printed
    assert "warm process   median   4.60 s" in printed and "load average before" in printed

    assert main(["bench", "--job-start", "2", "some/images", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]["warm process"]["median"] == 4.6


@pytest.mark.slow
def test_a_stand_in_job_is_measured_on_a_thread_and_in_worker_processes(monkeypatch, tmp_path):
    monkeypatch.setattr("tltools.bench.data.default_data", lambda: None)
    report = job_start.run(None, 1)
    assert report["data"] is None and set(report["results"]) == {"thread", "warm process", "fresh process"}
    for way in report["results"].values():
        assert len(way["seconds"]) == 1 and way["median"] > 0
