"""The Runs page, driven through AppTest: list, export once, delete with confirmation, continue training."""

import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import tltools.cli
from tests.factories import fast_config
from tests.waiting import wait_until
from tltools import app_state, runs
from tltools.fileio import read_json, write_json
from tltools.training import TrainConfig, train

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def run(colours):
    return train(fast_config(epochs=1), colours).run


@pytest.fixture
def copy_run(run):
    """Copy the run folder beside it, with changed ``status.json`` fields; copies are removed afterwards."""
    copies = []

    def copy(name: str, **status) -> Path:
        folder = Path(shutil.copytree(run.path, run.path.with_name(f"{run.run_id}-{name}")))
        write_json(folder / "status.json", {**read_json(folder / "status.json"), **status})
        copies.append(folder)
        return folder

    yield copy
    for folder in copies:
        shutil.rmtree(folder, ignore_errors=True)


def open_runs(run_path, **state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.SELECTED_RUN] = str(run_path)
    for key, value in state.items():
        app.session_state[key] = value
    app.run().switch_page("pages/runs.py").run()
    assert not app.exception, app.exception
    return app


def keys(app: AppTest, kind: str) -> set[str]:
    return {widget.key for widget in app.get(kind)}


@pytest.mark.slow
def test_lists_every_run_and_overlays_the_chosen_ones(run):
    app = open_runs(run.path)
    table = app.dataframe[0].value
    row = table[table["run"] == run.run_id].iloc[0]
    assert row["status"] == "✓ completed" and row["backbone"] == "efficientnet_lite0" and row["epochs run"] == 1
    assert row["val accuracy"] == pytest.approx(run.best_val_accuracy)
    assert app.multiselect(key="runs_chosen").value == [run.run_id]
    app.selectbox(key="runs_metric").set_value("loss").run()
    assert not app.exception, app.exception


@pytest.mark.slow
def test_a_keras_export_is_built_once_then_offered_for_download(run):
    app = open_runs(run.path)
    prepare, download = f"runs_prepare_{run.run_id}_keras", f"runs_download_{run.run_id}_keras"
    assert prepare in keys(app, "button") and download not in keys(app, "download_button")
    app.button(key=prepare).click().run()
    assert not app.exception, app.exception
    exported = run.path / "exports" / f"{run.run_id}.keras"
    built = exported.stat().st_mtime_ns
    assert download in keys(app, "download_button") and prepare not in keys(app, "button")
    assert any("max probability difference" in caption.value for caption in app.caption)
    again = open_runs(run.path)
    assert download in keys(again, "download_button") and prepare not in keys(again, "button")
    assert exported.stat().st_mtime_ns == built
    assert tltools.cli.main(["export", str(run.path), "--format", "keras"]) == 0  # the CLI finds the same file
    assert exported.stat().st_mtime_ns == built


@pytest.mark.slow
def test_an_export_made_with_the_cli_is_the_one_the_page_offers(copy_run, capsys):
    other = copy_run("cli-export")
    assert tltools.cli.main(["export", str(other), "--format", "h5"]) == 0
    exported = other / "exports" / f"{other.name}.h5"
    assert capsys.readouterr().out.startswith(f"wrote {exported} (h5, ")
    app = open_runs(other)
    assert f"runs_download_{other.name}_h5" in keys(app, "download_button")
    assert f"runs_prepare_{other.name}_h5" not in keys(app, "button")
    assert app.get("download_button")[0].proto.label == "Download .h5"


def test_deleting_needs_the_confirmation_and_removes_the_folder(copy_run):
    doomed = copy_run("doomed")
    app = open_runs(doomed)
    delete = app.button(key=f"runs_delete_{doomed.name}")
    assert delete.disabled
    app.checkbox(key=f"runs_confirm_{doomed.name}").check().run()
    app.button(key=f"runs_delete_{doomed.name}").click().run()
    assert not app.exception, app.exception
    assert not doomed.exists()
    assert doomed.name not in set(app.dataframe[0].value["run"])


def test_a_running_run_is_not_deleted_and_the_page_says_why(copy_run):
    live = copy_run("live", status="running", pid=os.getpid(), process_token=runs._PROCESS_TOKEN)
    app = open_runs(live)
    app.checkbox(key=f"runs_confirm_{live.name}").check().run()
    app.button(key=f"runs_delete_{live.name}").click().run()
    assert live.is_dir()
    assert len(app.error) == 1 and "still training; stop it before deleting it" in app.error[0].value


def test_continue_training_on_a_stopped_run_opens_train_with_its_settings(run, copy_run, colours):
    stopped = copy_run("stopped", status="stopped")
    app = open_runs(stopped, **{app_state.DATASET: colours})
    app.multiselect(key="runs_chosen").set_value([stopped.name, run.run_id]).run()
    continue_buttons = {key for key in keys(app, "button") if key.startswith("runs_continue_")}
    assert continue_buttons == {f"runs_continue_{stopped.name}"}  # a completed run is not continued
    app.button(key=f"runs_continue_{stopped.name}").click().run()
    assert app.session_state[app_state.FROM_RUN] == str(stopped)
    assert app.session_state[app_state.CONFIG] == TrainConfig.from_dict(run.config)
    assert app.session_state[app_state.DATASET] is colours
    assert app.title[0].value == "Train"


def test_continue_training_loads_the_runs_dataset_when_none_is_loaded(copy_run, colours):
    stopped = copy_run("interrupted", status="running", pid=None)
    app = open_runs(stopped)
    app.button(key=f"runs_continue_{stopped.name}").click().run()
    assert app.session_state[app_state.DATASET].classes == colours.classes
    assert app.title[0].value == "Train"


@pytest.mark.slow
def test_a_run_training_in_this_server_links_to_its_live_view(colours, copy_run):
    from tltools.streamlit_bridge import job_manager

    job = job_manager().submit(fast_config(epochs=500), colours)
    try:
        def started() -> bool:
            assert not job.finished, job.error
            return (job.run_dir / "status.json").is_file()

        wait_until(started, 120, "the job wrote no run status")
        app = open_runs(job.run_dir)
        assert app.multiselect(key="runs_chosen").value == [job.run_dir.name]
        (link,) = [link for link in app.get("page_link") if not link.value.startswith("Next:")]
        assert (link.value, link.proto.query_string) == ("Watch it train", f"{app_state.JOB_QUERY_PARAM}={job.job_id}")
    finally:
        job_manager().stop(job.job_id)
        job_manager().wait(job.job_id, timeout=120)
    elsewhere = copy_run("cli", status="running", pid=os.getpid(), process_token=runs._PROCESS_TOKEN)
    app = open_runs(elsewhere)
    assert [link.value for link in app.get("page_link")] == ["Next: evaluate the chosen run"]
    assert any("trains in another process" in caption.value for caption in app.caption)


def test_the_table_tells_runs_apart_and_marks_the_best_and_the_stopped_one(run, copy_run):
    stopped = copy_run("stopped-table", status="stopped")
    write_json(stopped / "metrics.json", {**read_json(stopped / "metrics.json"),
                                          "val": {**run.metrics["val"], "accuracy": 0.01}})
    write_json(stopped / "config.json", {**run.config, "learning_rate": 0.02, "unfreeze": "block:6"})
    app = open_runs(run.path)
    table = app.dataframe[0].value.set_index("run")
    assert {"best", "status", "dataset", "backbone", "image size", "LR", "epochs", "unfreeze", "mode", "val accuracy",
            "test accuracy", "duration (s)"} <= set(table.columns)
    mine, other = table.loc[run.run_id], table.loc[stopped.name]
    assert mine["status"] != other["status"] and other["status"] == "■ stopped early"
    assert other["best"] == ""  # same data, lower validation accuracy
    same_data = table[table["dataset"] == mine["dataset"]]
    starred = same_data[same_data["best"] == "★"]
    assert len(starred) == 1 and starred["val accuracy"].iloc[0] == same_data["val accuracy"].max()
    assert mine["dataset"] == runs.dataset_name(run) and "/" not in mine["dataset"]
    assert other["LR"] == 0.02 and other["unfreeze"] == "block:6" and mine["mode"] == "manual"
    assert mine["duration (s)"] >= 0 and mine["image size"] == run.config["image_size"]


@pytest.mark.slow
def test_comparing_two_runs_highlights_the_settings_that_differ_and_keeps_both_panels_open(run, copy_run):
    other = copy_run("other-lr")
    write_json(other / "config.json", {**run.config, "learning_rate": 0.05})
    app = open_runs(run.path)
    app.multiselect(key="runs_chosen").set_value([run.run_id, other.name]).run()
    assert not app.exception, app.exception
    settings = app.dataframe[1]
    assert list(settings.value.index) == ["learning_rate"]  # only the differing setting by default
    assert list(settings.value.loc["learning_rate"]) == [str(run.config["learning_rate"]), "0.05"]
    # each chosen run keeps its own panel with its exports (no expander collapses)
    assert {f"runs_prepare_{run.run_id}_bundle", f"runs_prepare_{other.name}_bundle"} <= keys(app, "button")
    assert not app.expander
    app.toggle(key="runs_only_differences").set_value(False).run()
    assert "backbone" in app.dataframe[1].value.index
    app.selectbox(key="runs_metric").set_value("val_loss").run()
    figure = app.get("plotly_chart")[0].proto.spec
    assert '"range"' in figure  # the axis is fitted to the runs' values


def test_best_run_helper_prefers_accuracy_then_newest_and_filters_by_data(run, copy_run):
    worse = copy_run("worse")
    write_json(worse / "metrics.json", {"val": {"accuracy": 0.0}})
    listed = runs.list_runs(run.path.parent)
    assert runs.best_run(listed, runs.dataset_fingerprint(run)).run_id != worse.name
    assert runs.best_run(listed, "another dataset") is None
    assert "% val" in runs.picker_label(run) and "completed" in runs.picker_label(run)
