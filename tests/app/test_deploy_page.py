"""The Distill & adapt page, driven through AppTest: distil the chosen run into a student run and show it."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import fast_config
from tltools import app_state, runs
from tltools.training import train

TIMEOUT = 300
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def run(colours):
    return train(fast_config(epochs=1, test_fraction=0.2), colours).run


def open_page(run_path) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.SELECTED_RUN] = str(run_path)
    app.run().switch_page("pages/deploy.py").run()
    assert not app.exception, app.exception
    return app


@pytest.mark.slow
def test_distill_button_writes_a_student_run_naming_the_teacher(run):
    app = open_page(run.path)
    assert [tab.label for tab in app.tabs] == ["Distill", "Adapt to new images", "Latency per format"]
    app.number_input[0].set_value(64)
    app.number_input[1].set_value(1)
    app.checkbox[0].uncheck()
    before = {other.run_id for other in runs.list_runs()}
    next(button for button in app.button if button.label == "Distill").click().run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]
    assert any(message.value.startswith("Student run ") for message in app.success)
    (student,) = [other for other in runs.list_runs() if other.run_id not in before]
    assert (student.path / "distill.json").is_file() and student.status == runs.COMPLETED
    assert run.run_id in (student.path / "distill.json").read_text()
    # The adapt button waits for an upload.
    assert next(button for button in app.button if button.label == "Adapt").disabled
