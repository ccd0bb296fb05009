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


def analysed(app: AppTest) -> AppTest:
    """Press Analyse, wait for the analysis job (on a thread in tests) and draw the page from its report."""
    from tltools.streamlit_bridge import job_manager

    app.button(key="health_analyse").click().run()
    assert not app.exception, app.exception
    job = job_manager().wait(app.session_state["health_job"], timeout=TIMEOUT)
    assert job.status == "completed", job.error
    app.run()
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
    analysed(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Likely label errors"] == "1" and metrics["Duplicate groups"] == "1"
    wrong, suggested = planted["label_error"]
    assert any(wrong in markdown.value and suggested in markdown.value for markdown in app.markdown)
    index = app.session_state["health_report"].table["relpath"].tolist().index(wrong)
    assert any("Click a point" in info.value for info in app.info)
    app.session_state["health_map_chart"] = {"selection": {"points": [{"customdata": index}], "point_indices": [0],
                                                           "box": [], "lasso": []}}  # a click on its map point
    app.run()
    assert not app.exception, app.exception
    assert not any("Click a point" in info.value for info in app.info)
    assert any(wrong in markdown.value and f"likely '{suggested}'" in markdown.value for markdown in app.markdown)
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


@pytest.mark.slow
def test_a_running_analysis_is_seen_by_another_session_and_its_report_comes_back_from_the_job(tmp_path):
    from tests.factories import fast_config
    from tltools.streamlit_bridge import job_manager

    root = tmp_path / "shapes"
    wrong, _ = write_health_set(root)["label_error"]
    manager = job_manager()
    blocker = manager.submit(fast_config(epochs=10000), load_dataset(root), task="tests.worker_trainers:until_stopped")
    first = open_page(load_dataset(root), image_size=96)
    first.button(key="health_analyse").click().run()
    assert not first.exception, first.exception
    job_id = first.session_state["health_job"]
    other = open_page(load_dataset(root), image_size=96)  # another tab, or the same one refreshed
    assert other.session_state["health_job"] == job_id
    assert other.button(key="health_analyse").disabled, "no second analysis while one runs"
    assert any("place 1 in the queue" in bar.text for bar in other.get("progress")) or any(
        "Analysing" in bar.text for bar in other.get("progress"))
    manager.stop(blocker.job_id)
    assert manager.wait(job_id, timeout=TIMEOUT).status == "completed"
    other.run()
    assert not other.exception, other.exception
    assert not other.button(key="health_analyse").disabled
    metrics = {metric.label: metric.value for metric in other.metric}
    assert metrics["Likely label errors"] == "1"
    assert other.session_state["health_report"].table["relpath"].iat[
        other.session_state["health_report"].label_issues[0].index] == wrong


def test_stop_cancels_a_waiting_analysis_and_says_nothing_was_saved(tmp_path):
    from tests.factories import fast_config
    from tltools.streamlit_bridge import job_manager

    root = tmp_path / "shapes"
    write_health_set(root, per_class=4)
    manager = job_manager()
    blocker = manager.submit(fast_config(epochs=10000), load_dataset(root), task="tests.worker_trainers:until_stopped")
    try:
        app = open_page(load_dataset(root), image_size=96)
        app.button(key="health_analyse").click().run()
        app.button(key="health_stop").click().run()
        assert not app.exception, app.exception
        assert manager.get(app.session_state["health_job"]).status == "stopped"
        app.run()
        assert any("nothing was saved" in info.value for info in app.info)
        assert not app.button(key="health_analyse").disabled and not app.metric
    finally:
        manager.stop(blocker.job_id)
