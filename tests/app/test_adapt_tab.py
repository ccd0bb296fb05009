"""The "Adapt to new images" tab: uploads kept in the uploads area, adaptation submitted as a job, its report shown."""

import io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import fast_config
from tltools import app_state, paths, runs
from tltools.training import train

TIMEOUT = 300
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def run(colours):
    return train(fast_config(epochs=1, test_fraction=0.2), colours).run


def zipped(folder: Path, *, flat: bool) -> bytes:
    """A zip of the images below ``folder``: flat file names (unlabelled) or class folders (labelled)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted(folder.rglob("*.png")):
            bundle.write(path, f"{path.parent.name}_{path.name}" if flat else f"{path.parent.name}/{path.name}")
    return buffer.getvalue()


@pytest.mark.slow
def test_adapt_button_submits_a_job_whose_report_the_tab_shows(run, colours_dir):
    from tltools.adapt.task import latest_adapt_job
    from tltools.streamlit_bridge import job_manager

    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.SELECTED_RUN] = str(run.path)
    app.run().switch_page("pages/deploy.py").run()
    assert not app.exception, app.exception
    adapt_button = next(button for button in app.button if button.label == "Adapt")
    assert adapt_button.disabled  # waits for an upload
    app.file_uploader(key="deploy_target").set_value(("photos.zip", zipped(colours_dir, flat=True), "application/zip"))
    app.file_uploader(key="deploy_labelled").set_value(("some-labelled.zip", zipped(colours_dir, flat=False),
                                                        "application/zip"))
    app.run()
    next(radio for radio in app.radio if radio.label == "Method").set_value("adabn")
    next(button for button in app.button if button.label == "Adapt").click().run()
    assert not app.exception, app.exception
    assert not app.error, [error.value for error in app.error]
    job = latest_adapt_job(job_manager(), app.session_state[app_state.SESSION_ID], run)
    assert job is not None and job.options["method"] == "adabn"
    # The uploads outlive the request: extracted into the uploads area, where the job reads them.
    assert Path(job.options["target"]).parent == paths.datasets_dir()
    assert Path(job.options["target_labels"]).parent == paths.datasets_dir()
    job_manager().wait(job.job_id, timeout=TIMEOUT)
    assert job.status == "completed", job.error
    app.run()
    assert not app.exception, app.exception
    assert any(message.value.startswith(f"Adapted run **{job.run_dir.name}**") for message in app.success)
    table = app.dataframe[-1].value
    assert list(table["stage"]) == ["source-only", "adabn"] and "labelled accuracy" in table.columns
    assert runs.read_run(job.run_dir).status == runs.COMPLETED
