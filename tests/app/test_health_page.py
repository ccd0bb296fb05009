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


@pytest.mark.slow
def test_retrain_with_fixes_uses_the_last_runs_settings_and_shows_before_and_after(tmp_path):
    import pandas as pd

    from tests.factories import fast_config
    from tltools.health import versions
    from tltools.streamlit_bridge import job_manager

    root = tmp_path / "shapes"
    wrong, suggested = write_health_set(root, per_class=8)["label_error"]
    settings = fast_config(epochs=1, learning_rate=0.003)
    manager = job_manager()
    first = manager.submit(settings, load_dataset(root, split=settings))
    assert manager.wait(first.job_id, timeout=TIMEOUT).status == "completed"
    folder = versions.write_version(load_dataset(root), pd.DataFrame(
        [(wrong, "squares", suggested, "relabel", "fix")], columns=versions.COLUMNS))
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.session_state["dataset"] = load_dataset(folder, split=settings)
    app.session_state["job_id"] = first.job_id
    app.switch_page("pages/health.py").run()
    app.button(key="health_retrain_button").click().run()
    assert not app.exception, app.exception
    retrain = app.session_state["health_retrain"]
    assert retrain["before"] == str(first.run_dir)
    second = manager.wait(retrain["job"], timeout=TIMEOUT)
    assert second.status == "completed" and second.config.learning_rate == 0.003
    assert second.dataset is None or second.dataset.version == str(folder.resolve())
    app.run()
    table = app.dataframe[-1].value
    assert list(table.columns) == ["metric", "before (original data)", "after (fixed version)"]
    assert "Validation accuracy" in set(table["metric"]) and table.notna().all().all()
