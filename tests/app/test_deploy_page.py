"""The Distill & adapt page, driven through AppTest: distil the chosen run into a student run and show it."""

import io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import COLOURS, colour_images, fast_config
from tltools import app_state, paths, runs
from tltools.training import train

TIMEOUT = 300
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def run(colours):
    return train(fast_config(epochs=1, test_fraction=0.2), colours).run


def unlabelled_zip() -> bytes:
    """Six unlabelled colour images, flat in a zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for relpath, content in colour_images(COLOURS, 2, seed=9).items():
            bundle.writestr(relpath.replace("/", "_"), content)
    return buffer.getvalue()


def open_page(run_path) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.SELECTED_RUN] = str(run_path)
    app.run().switch_page("pages/deploy.py").run()
    assert not app.exception, app.exception
    return app


@pytest.mark.slow
def test_distill_button_submits_a_job_whose_student_run_names_the_teacher(run):
    from tltools.distill.task import latest_distill_job
    from tltools.streamlit_bridge import job_manager

    app = open_page(run.path)
    assert [tab.label for tab in app.tabs] == ["Distill", "Adapt to new images", "Latency per format"]
    app.number_input[0].set_value(64)
    app.number_input[1].set_value(1)
    app.checkbox[0].uncheck()
    app.file_uploader(key="distill_unlabeled").set_value(("more.zip", unlabelled_zip(), "application/zip"))
    app.run()
    next(button for button in app.button if button.label == "Distill").click().run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]
    job = latest_distill_job(job_manager(), app.session_state[app_state.SESSION_ID], run)
    assert job is not None and job.config.teacher_run == str(run.path.resolve()) and job.options == {"compare": False}
    assert Path(job.config.distill_unlabeled).parent == paths.datasets_dir()  # kept where the job can read it
    job_manager().wait(job.job_id, timeout=TIMEOUT)
    assert job.status == "completed", job.error
    app.run()
    assert not app.exception, app.exception
    assert any(message.value.startswith(f"Student run **{job.run_dir.name}**") for message in app.success)
    student = runs.read_run(job.run_dir)
    assert (student.path / "distill.json").is_file() and student.status == runs.COMPLETED
    assert student.config["teacher_run"] == str(run.path.resolve())
    assert job.summary["unlabeled"] == {"images": 6}
    # The adapt button waits for an upload.
    assert next(button for button in app.button if button.label == "Adapt").disabled


@pytest.mark.slow
def test_runs_page_distill_opens_the_page_with_that_run_as_teacher(run):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run().switch_page("pages/runs.py").run()
    app.multiselect(key="runs_chosen").set_value([run.run_id]).run()
    app.button(key=f"runs_distill_{run.run_id}").click().run()
    assert not app.exception, app.exception
    assert app.session_state[app_state.SELECTED_RUN] == str(run.path)
    assert app.title[0].value == "Distill & adapt"
    assert app.selectbox(key="deploy_run").value == str(run.path)
