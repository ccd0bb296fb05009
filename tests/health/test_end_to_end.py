"""The whole analysis on generated images with a real backbone, and a run trained on a fixed version."""

import hashlib
import json

import pandas as pd
import pytest

from tests.factories import fast_config
from tests.health.data import write_health_set
from tltools import runs
from tltools.data import load_dataset
from tltools.health import analyse, versions
from tltools.training import TrainingLog, train


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("health") / "shapes"
    return root, write_health_set(root)


@pytest.mark.slow
def test_each_planted_finding_is_found_and_nothing_invented(planted):
    root, found = planted
    report = analyse(load_dataset(root), image_size=96).to_json()
    wrong, suggested = found["label_error"]
    assert [(item["path"], item["suggested"]) for item in report["label_issues"]] == [(wrong, suggested)]
    assert [set(group["paths"]) for group in report["duplicates"]] == [found["duplicate"]]
    assert report["duplicates"][0]["kind"] == "near" and not report["duplicates"][0]["leakage"]
    assert report["outliers"][0]["path"] == found["outlier"], "the blank frame is the farthest image"
    assert len(report["outliers"]) <= 3
    assert report["confused_pairs"] and report["confused_pairs"][0]["classes"] == ["circles", "squares"]
    assert {row["class"] for row in report["class_quality"]} == {"circles", "squares", "stripes"}
    json.dumps(report)  # one JSON object


@pytest.mark.slow
def test_a_run_trained_on_a_fixed_version_records_it_and_reloads_it(planted, tmp_path):
    root, found = planted
    before = {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in root.rglob("*") if path.is_file()}
    wrong, suggested = found["label_error"]
    changes = pd.DataFrame([(wrong, "squares", suggested, "relabel", "label error"),
                            ("stripes/copy.jpg", "stripes", "", "exclude", "near duplicate")], columns=versions.COLUMNS)
    folder = versions.write_version(load_dataset(root), changes, tmp_path / "fixed")
    config = fast_config(image_size=64, epochs=1)
    result = train(config, load_dataset(folder, split=config), log=TrainingLog())
    recorded = json.loads((result.run.path / runs.DATASET_FILE).read_text())
    assert recorded["version"] == str(folder.resolve()) and recorded["root"] == str(root.resolve())
    split = runs.read_split(result.run).set_index("relpath")
    assert split.at[wrong, "label"] == suggested and "stripes/copy.jpg" not in split.index
    again = runs.load_run_dataset(runs.read_run(result.run.path))
    assert again.version == str(folder.resolve())
    assert again.items.set_index("relpath").at[wrong, "label"] == suggested
    assert {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in root.rglob("*") if path.is_file()} == before
