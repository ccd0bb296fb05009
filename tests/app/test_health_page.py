"""The Data health page, driven through Streamlit's AppTest: analyse, decide on a finding, save a version."""

import hashlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.health.data import write_health_set
from tltools.data import load_dataset

TIMEOUT = 180
APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(dataset=None, image_size: int | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    if dataset is not None:
        app.session_state["dataset"] = dataset
        app.session_state["train_config"] = app.session_state["train_config"].replace(image_size=image_size)
    app.switch_page("pages/health.py").run()
    assert not app.exception, app.exception
    return app


def test_without_a_dataset_the_page_points_to_the_dataset_page():
    app = open_page()
    assert "Load a dataset first" in app.info[0].value
    assert not app.button


@pytest.mark.slow
def test_analyse_relabel_and_save_a_version_without_touching_the_files(tmp_path):
    root = tmp_path / "shapes"
    planted = write_health_set(root)
    before = {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in root.rglob("*") if path.is_file()}
    app = open_page(load_dataset(root), image_size=96)
    app.button(key="health_analyse").click().run()
    assert not app.exception, app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Likely label errors"] == "1" and metrics["Duplicate groups"] == "1"
    wrong, suggested = planted["label_error"]
    assert any(wrong in markdown.value and suggested in markdown.value for markdown in app.markdown)
    index = app.session_state["health_report"].table["relpath"].tolist().index(wrong)
    app.segmented_control(key=f"health_action_label_{index}").set_value("relabel").run()
    assert app.session_state["health_decisions"] == {
        wrong: ("relabel", suggested, app.session_state["health_decisions"][wrong][2])}
    app.button(key="health_save").click().run()
    assert not app.exception, app.exception
    fixed = app.session_state["dataset"]
    assert fixed.version and fixed.items.set_index("relpath").at[wrong, "label"] == suggested
    assert {path: hashlib.sha1(path.read_bytes()).hexdigest() for path in root.rglob("*") if path.is_file()} == before
    assert any("unchanged" in success.value for success in app.success)
