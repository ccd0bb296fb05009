"""Several users at once, through Streamlit's AppTest: each session keeps its own data, settings, job and run.

Every ``AppTest`` is its own browser session in this process; they share what a
server's sessions share: the job manager (``st.cache_resource``), the runs and
datasets folders and the feature cache. Three sessions upload different
datasets and start training while the manager trains one job at a time; two
more train the same dataset at the same moment on a manager that allows two.
"""

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import colour_images, zip_bytes
from tests.waiting import wait_until
from tltools import app_state, runs
from tltools.fileio import read_json
from tltools.training import feature_cache

pytestmark = pytest.mark.slow  # every session trains real models

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")

# Each session's upload: the archive's name and its classes (colours to learn). No name is part of another.
UPLOADS = {
    "orchard": {"quince": (220, 200, 60), "kumquat": (240, 140, 20)},
    "clouds": {"cumulus": (230, 230, 240), "nimbus": (90, 90, 110), "cirrus": (170, 200, 240)},
    "woodland": {"fernleaf": (50, 160, 60), "birchbark": (120, 80, 40)},
}
FIRST_EPOCHS = 150  # the first job trains long enough (several seconds) for the others to be seen waiting
LATER_EPOCHS = 3


@pytest.fixture
def app_jobs(monkeypatch):
    """Return ``use(max_concurrent)``: give the app a fresh job manager that trains that many jobs at once.

    The app's manager is created once per process (``st.cache_resource``) from
    ``TLTOOLS_MAX_CONCURRENT_JOBS``; it is dropped again afterwards, so later
    tests get one made from the restored environment. Jobs a failed test left
    behind are stopped first.
    """
    from tltools.streamlit_bridge import job_manager

    managers = []

    def use(max_concurrent: int):
        monkeypatch.setenv("TLTOOLS_MAX_CONCURRENT_JOBS", str(max_concurrent))
        job_manager.clear()
        managers.append(job_manager())
        assert managers[-1].max_concurrent == max_concurrent and not managers[-1].jobs()
        return managers[-1]

    yield use
    for manager in managers:
        for job in manager.jobs():
            manager.stop(job.job_id)
            manager.wait(job.job_id, timeout=120)
    job_manager.clear()


def archive_of(name: str, classes: dict, seed: int) -> bytes:
    """A zip of one folder ``<name>/`` with a folder of 6 noisy colour images per class."""
    return zip_bytes(colour_images(classes, 6, seed=seed, prefix=f"{name}/"))


def open_session(name: str, archive: bytes, classes: dict, *, epochs: int) -> AppTest:
    """A new session that uploads ``archive`` as ``<name>.zip``, sets a 64 px input and ``epochs`` epochs, on Train."""
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/dataset.py").run()
    app.file_uploader(key="dataset_upload").set_value((f"{name}.zip", archive, "application/zip"))
    app.run()
    app.switch_page("pages/model.py").run()
    app.number_input(key="model_image_size_efficientnet_lite0").set_value(64).run()
    app.switch_page("pages/train.py").run()
    app.number_input(key="train_epochs").set_value(epochs).run()
    app.number_input(key="train_patience").set_value(0).run()
    assert not app.exception, app.exception
    assert app.session_state[app_state.DATASET].classes == sorted(classes)
    return app


def start(app: AppTest):
    """Click Start training; return the session's job."""
    from tltools.streamlit_bridge import job_manager

    app.button(key="train_start").click().run()
    assert not app.exception, app.exception
    return job_manager().get(app.session_state[app_state.JOB_ID])


def rendered(app: AppTest) -> str:
    """Everything the session's page shows, as the text of every element's message.

    (AppTest keeps no sidebar after ``switch_page``; the sidebar is checked in the browser tests.)
    """
    return "\n".join(str(node.proto) for node in [*app.main, *app.sidebar] if node.proto is not None)


def feature_entries(dataset) -> list[dict]:
    """The feature-cache descriptions (``.json``) computed from ``dataset``'s images."""
    return [read_json(path) for path in feature_cache.features_dir().glob("*.json")
            if read_json(path)["dataset_fingerprint"] == dataset.fingerprint]


def test_sessions_queue_their_jobs_and_each_ends_with_its_own_run(app_jobs):
    manager = app_jobs(1)
    sessions = {name: open_session(name, archive_of(name, classes, seed=n), classes,
                                   epochs=FIRST_EPOCHS if n == 0 else LATER_EPOCHS)
                for n, (name, classes) in enumerate(UPLOADS.items())}
    jobs = {name: start(app) for name, app in sessions.items()}
    first, second, third = jobs.values()
    wait_until(lambda: first.status == "running", TIMEOUT, "the first job did not start")

    # One job trains, the others wait, each session seeing only its own place.
    assert (second.status, third.status) == ("queued", "queued")
    assert (manager.queue_position(second.job_id), manager.queue_position(third.job_id)) == (1, 2)
    for app in sessions.values():
        app.run()
        assert not app.exception, app.exception
    waiting = {name: [info.value for info in app.info if "in the queue" in info.value]
               for name, app in sessions.items()}
    assert waiting == {"orchard": [],
                       "clouds": ["Waiting for another training run to finish: place 1 in the queue."],
                       "woodland": ["Waiting for another training run to finish: place 2 in the queue."]}
    assert first.status == "running", "the first job ended before the queue was seen; give it more epochs"
    assert sessions["orchard"].get("progress"), "the running job's session shows its progress"

    # Nothing of one session is in another's state or on its page.
    session_ids = {app.session_state[app_state.SESSION_ID] for app in sessions.values()}
    assert len(session_ids) == 3 and len({job.job_id for job in jobs.values()}) == 3
    for name, app in sessions.items():
        job = jobs[name]
        assert app.session_state[app_state.JOB_ID] == job.job_id
        assert job.owner == app.session_state[app_state.SESSION_ID]
        assert manager.jobs(owner=job.owner) == [job]
        assert app.session_state[app_state.DATASET].classes == sorted(UPLOADS[name])
        assert job.dataset is app.session_state[app_state.DATASET]
        assert job.config.epochs == app.session_state[app_state.CONFIG].epochs
        assert job.config is not app.session_state[app_state.CONFIG], "a job keeps its own copy of the settings"
        page = rendered(app)
        assert f"{name}.zip" in page
        for other, other_job in jobs.items():
            if other != name:
                assert f"{other}.zip" not in page and other_job.job_id not in page
                assert not any(label in page for label in UPLOADS[other])

    for job in jobs.values():
        manager.wait(job.job_id, timeout=300)
    folders = [job.run_dir for job in jobs.values()]
    assert len({folder.name for folder in folders}) == 3
    for name, app in sessions.items():
        job = jobs[name]
        assert job.status == "completed", job.error
        app.run()
        assert any(f"Run `{job.run_dir.name}`" in message.value for message in app.success)
        run = runs.read_run(job.run_dir)
        assert run.status == runs.COMPLETED and run.classes == sorted(UPLOADS[name])
        assert (job.run_dir / "labels.txt").read_text().split() == sorted(UPLOADS[name])
        dataset = app.session_state[app_state.DATASET]
        assert Path(read_json(job.run_dir / "dataset.json")["root"]) == dataset.root.resolve()
        assert job.dataset is None, "a finished job lets go of its data, so housekeeping may clean it later"
        assert run.metrics["feature_cache"] == "miss"  # no other dataset's features were taken for its own

        # Its Predict page opens on its own run, though the others' runs are newer or as new.
        app.switch_page("pages/predict.py").run()
        assert not app.exception, app.exception
        assert app.selectbox(key="predict_run").value == str(job.run_dir)
        caption = next(caption.value for caption in app.caption if " classes (" in caption.value)
        assert caption.startswith(f"{len(UPLOADS[name])} classes ({', '.join(sorted(UPLOADS[name]))})")
    datasets = [app.session_state[app_state.DATASET] for app in sessions.values()]
    assert len({dataset.root for dataset in datasets}) == 3
    entries = [feature_entries(dataset) for dataset in datasets]
    assert [len(found) for found in entries] == [1, 1, 1]
    assert len({found[0]["digest"] for found in entries}) == 3


def test_two_sessions_training_the_same_data_at_once_share_the_feature_cache_unharmed(app_jobs, monkeypatch):
    manager = app_jobs(2)
    # Both jobs must compute the same cache entry at the same moment: each waits for the other before writing.
    both_extracting = threading.Barrier(2, timeout=120)
    extract = feature_cache.extract_features

    def extract_together(*args, **kwargs):
        both_extracting.wait()
        return extract(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "extract_features", extract_together)
    classes = {"saffron": (240, 190, 30), "teal": (20, 140, 140)}
    archive = archive_of("spice", classes, seed=7)
    sessions = [open_session("spice", archive, classes, epochs=LATER_EPOCHS) for _ in range(2)]
    # The same upload is extracted once; both sessions read the one folder.
    assert sessions[0].session_state[app_state.DATASET].root == sessions[1].session_state[app_state.DATASET].root
    jobs = [start(app) for app in sessions]
    for job in jobs:
        manager.wait(job.job_id, timeout=300)
    assert [job.status for job in jobs] == ["completed", "completed"], [job.error for job in jobs]
    assert jobs[0].run_dir != jobs[1].run_dir
    assert [job.metrics["feature_cache"] for job in jobs] == ["miss", "miss"]

    dataset = sessions[0].session_state[app_state.DATASET]
    (entry,) = feature_entries(dataset)
    stem = next(path.stem for path in feature_cache.features_dir().glob("*.json")
                if read_json(path)["digest"] == entry["digest"])
    assert not list(feature_cache.features_dir().glob(f".{stem}*")), "a temporary file was left behind"
    monkeypatch.setattr(feature_cache, "extract_features", extract)
    again = start(sessions[0].run())  # the rerun enables Start again
    manager.wait(again.job_id, timeout=300)
    assert again.status == "completed" and again.metrics["feature_cache"] == "hit"  # the entry reads back whole
