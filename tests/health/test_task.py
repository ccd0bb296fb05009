"""The health analysis as a job: progress in the job's log, the saved report handed back, Stop honoured."""

import pytest

from tests.health.data import write_health_set
from tltools.data import load_dataset
from tltools.health import task
from tltools.jobs import JobManager
from tltools.training import StopRequest, TrainConfig, TrainingLog

SETTINGS = TrainConfig(image_size=96)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("health-task") / "shapes"
    return root, write_health_set(root)


def test_report_file_follows_the_data_and_the_feature_settings(shapes, tmp_path):
    root, _ = shapes
    dataset = load_dataset(root)
    assert task.report_path(dataset, SETTINGS) == task.report_path(load_dataset(root), SETTINGS)
    assert task.report_path(dataset, SETTINGS) != task.report_path(dataset, SETTINGS.replace(image_size=128))
    resplit = dataset.with_splits(SETTINGS.replace(seed=SETTINGS.seed + 1))
    assert task.report_path(resplit, SETTINGS) != task.report_path(dataset, SETTINGS), "leakage depends on the split"
    copy = tmp_path / "copy"
    write_health_set(copy)
    assert task.report_path(load_dataset(copy), SETTINGS) != task.report_path(dataset, SETTINGS)


@pytest.mark.slow
def test_analysis_job_logs_its_steps_and_hands_back_the_saved_report(shapes, tmp_path):
    root, planted = shapes
    dataset = load_dataset(root)
    path = task.report_path(dataset, SETTINGS)
    manager = JobManager(processes=False, runs_root=tmp_path / "runs")
    job = manager.submit(SETTINGS, dataset, task=task.ANALYSIS_TASK, options={"report": str(path)})
    assert task.find_running(manager, path) is job or job.finished
    assert manager.wait(job.job_id, timeout=300).status == "completed", job.error
    assert job.summary["report"] == str(path) and job.summary["label_issues"] == 1 and not job.summary["stopped"]
    assert task.find_running(manager, path) is None
    report, coordinates = task.load_report(path)
    assert report.table["relpath"].iat[report.label_issues[0].index] == planted["label_error"][0]
    assert coordinates.shape == (len(report.table), 2)
    state = job.log.snapshot()
    assert state["health_stage"] == "done"
    assert any("fold heads" in message for message in state["messages"])
    assert any("drawing the map" in message for message in state["messages"])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "an analysis makes no run"


def test_a_stopped_analysis_saves_nothing(shapes, tmp_path):
    root, _ = shapes
    stop = StopRequest()
    stop.stop()
    path = tmp_path / "report.pkl"
    outcome = task.analysis_task(SETTINGS, load_dataset(root), log=TrainingLog(), stop=stop, report=str(path))
    assert outcome.summary == {"report": None, "stopped": True} and outcome.metrics == {}
    assert not path.exists()


@pytest.mark.slow
def test_stop_during_the_folds_ends_the_analysis_at_the_next_fold(shapes, tmp_path):
    root, _ = shapes
    stop, log = StopRequest(), TrainingLog()
    original = log.update

    def update(**values):  # press Stop as soon as the fold heads start
        original(**values)
        if str(values.get("health_stage", "")).startswith("label errors"):
            stop.stop()

    log.update = update
    path = tmp_path / "report.pkl"
    outcome = task.analysis_task(SETTINGS, load_dataset(root), log=log, stop=stop, report=str(path))
    assert outcome.summary["stopped"] and not path.exists()
    assert not any("duplicates" in message for message in log.snapshot()["messages"])


def test_unreadable_report_is_one_line(tmp_path):
    path = tmp_path / "broken.pkl"
    path.write_bytes(b"not a pickle")
    with pytest.raises(Exception, match="unreadable.*Analyse again"):
        task.load_report(path)
