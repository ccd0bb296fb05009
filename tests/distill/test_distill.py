"""Distillation: the Hinton loss, a student run from a teacher run, bad input as one line, nothing written elsewhere."""

import os
import urllib.error

import keras
import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.utils import file_utils

from tests.factories import COLOURS, colour_images, fast_config, write_tree
from tltools.data import load_dataset
from tltools.distill import DISTILL_FILE, DistillationLoss, distill, targets, teacher_logits_model
from tltools.errors import TLToolsError
from tltools.paths import home_dir
from tltools.runs import COMPLETED, RunWriter, read_run
from tltools.training import TrainConfig, train


def _loss(y_true, probs, temperature=4.0, alpha=0.5):
    return np.asarray(DistillationLoss(3, temperature, alpha).call(keras.ops.convert_to_tensor(y_true),
                                                                   keras.ops.convert_to_tensor(probs)))


def test_alpha_one_is_plain_cross_entropy():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    y = targets(np.array([0, 2]), np.random.default_rng(0).normal(size=(2, 3)), 3)
    expected = -np.log([0.7, 0.6])
    assert np.allclose(_loss(y, probs, alpha=1.0), expected, atol=1e-6)


def test_soft_term_vanishes_when_student_matches_teacher_and_grows_otherwise():
    logits = np.array([[2.0, 0.5, -1.0]], np.float32)
    same = np.exp(logits) / np.exp(logits).sum()
    y = targets(np.array([0]), logits, 3)
    assert _loss(y, same, alpha=0.0)[0] == pytest.approx(0.0, abs=1e-5)
    assert _loss(y, np.array([[0.1, 0.1, 0.8]], np.float32), alpha=0.0)[0] > 0.1


def test_unlabelled_rows_contribute_only_the_soft_term():
    logits = np.array([[2.0, 0.5, -1.0]], np.float32)
    probs = np.array([[0.2, 0.3, 0.5]], np.float32)
    unlabelled = targets(np.array([1]), logits, 3, labelled=np.array([0.0]))
    assert unlabelled[0, :3].sum() == 0
    assert _loss(unlabelled, probs, alpha=1.0)[0] == pytest.approx(0.0, abs=1e-7)
    assert _loss(unlabelled, probs, alpha=0.5)[0] == pytest.approx(0.5 * _loss(unlabelled, probs, alpha=0.0)[0],
                                                                   rel=1e-5)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    data = write_tree(tmp_path_factory.mktemp("colours"), colour_images(COLOURS, 10, seed=0))
    return train(fast_config(val_fraction=0.2, test_fraction=0.2, epochs=3), load_dataset(data)).run


def _files_below(folder):
    return {path for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_distilled_student_is_an_ordinary_run_naming_its_teacher(teacher, tmp_path):
    home_before = _files_below(home_dir())
    lines = []
    result = distill(teacher.path, image_size=64, epochs=2, temperature=3.0, alpha=0.3, compare=False,
                     run_dir=tmp_path / "student", on_message=lines.append)
    run = read_run(tmp_path / "student")
    assert run.status == COMPLETED and run.model_path.is_file()
    assert TrainConfig.from_dict(run.config).backbone == "efficientnet_lite0"  # config.json stays a TrainConfig
    report = (run.path / DISTILL_FILE).read_text()
    assert teacher.run_id in report and '"temperature": 3.0' in report
    assert result.metrics["distillation"]["teacher"] == teacher.run_id
    assert result.metrics["test"]["num_images"] == teacher.metrics["test"]["num_images"]
    assert (run.path / "splits.csv").read_text() == (teacher.path / "splits.csv").read_text()  # the teacher's split
    assert "teacher logits: computed once for 30 images" in lines
    # Nothing outside the new run folder (and the feature cache) was written: not even the teacher's folder.
    assert _files_below(home_dir()) == home_before

    again = []
    distill(teacher.path, image_size=64, epochs=1, compare=False, run_dir=tmp_path / "second", on_message=again.append)
    assert "teacher logits: cached for 30 images" in again


@pytest.mark.slow
def test_comparison_rows_teacher_distilled_and_alone(teacher, tmp_path):
    result = distill(teacher.path, image_size=64, epochs=2, compare=True, latency_repeats=2,
                     run_dir=tmp_path / "student")
    rows = {row["model"]: row for row in result.report["comparison"]}
    assert set(rows) == {"teacher", "distilled student", "student alone"}
    for row in rows.values():
        assert row["parameters"] > 0 and row["int8_bytes"] > 0 and row["keras_bytes"] > row["int8_bytes"]
        assert row["int8_ms"] > 0 and row["keras_ms"] > 0
    alone = read_run(tmp_path / "student" / "comparison" / "student-alone")  # an ordinary run, without a teacher
    assert alone.status == COMPLETED and alone.config["teacher_run"] is None
    assert rows["student alone"]["test_accuracy"] == alone.metrics["test"]["accuracy"]
    assert (tmp_path / "student" / "comparison" / "teacher_int8.tflite").is_file()
    assert not (teacher.path / "exports").exists()  # the teacher's run is never written to


def test_teacher_run_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(TLToolsError, match=r"^no training run at .*nowhere; `python -m tltools runs` lists") as error:
        distill(tmp_path / "nowhere")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def bare_teacher(tmp_path):
    """A completed run folder with a model file: enough for the checks that come before any model is read."""
    writer = RunWriter(tmp_path / "teacher")
    writer.set_status(COMPLETED)
    writer.model_path.write_bytes(b"not read by these tests")
    return writer.path


@pytest.mark.parametrize(("option", "value", "message"), [
    ("temperature", 0.5, "distill_temperature=0.5 is not allowed; use a number from 1 to 100"),
    ("alpha", 1.5, "distill_alpha=1.5 is not allowed; use a number from 0 to 1"),
])
def test_bad_settings_are_one_line(bare_teacher, tmp_path, option, value, message):
    with pytest.raises(TLToolsError, match=message):
        distill(bare_teacher, run_dir=tmp_path / "x", **{option: value})
    assert not (tmp_path / "x").exists()


def test_unlabeled_folder_without_images_is_one_line(bare_teacher, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(TLToolsError, match=r"no image files below .*empty; give a folder of unlabelled images"):
        distill(bare_teacher, unlabeled=tmp_path / "empty", run_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_student_whose_weights_are_unavailable_offline_is_one_line(teacher, tmp_path, monkeypatch):
    def fail(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", fail)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))
    with pytest.raises(TLToolsError, match="could not download the ImageNet weights of mobilenet_v3_small: no internet"
                       ) as error:
        distill(teacher.path, student="mobilenet_v3_small", image_size=64, run_dir=tmp_path / "x")
    assert "\n" not in str(error.value)
    failed = read_run(tmp_path / "x")  # the student's run folder, the one place written, says why
    assert failed.status == "failed" and "no internet" in failed.error and not failed.model_path.exists()


@pytest.mark.slow
def test_teacher_logits_model_is_the_softmax_input(teacher):
    from tltools.model.io import load_model

    model, _, _ = load_model(teacher.path)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    logits = teacher_logits_model(model).predict(pixels, verbose=0)
    probs = model.predict(pixels, verbose=0)
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), probs, atol=1e-5)
    assert os.environ["TLTOOLS_HOME"]  # the session fixture isolates the folders these tests write


@pytest.mark.slow
def test_fine_tuning_the_student_is_distilled_too_and_keeps_the_best_epoch(teacher, tmp_path):
    result = distill(teacher.path, image_size=64, epochs=2, fine_tune_epochs=1, unfreeze="10", compare=False,
                     run_dir=tmp_path / "student")
    assert result.metrics["epochs_run"] == 3
    assert result.metrics["fine_tune_fast_path"] is True  # phase 2 trained on the cached cut, as train does
    assert 1 <= result.metrics["best_epoch"] <= 3
    history = (tmp_path / "student" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and "objective" in history[0] and "val_loss" in history[0]


@pytest.mark.slow
def test_student_config_names_the_teacher_and_the_run_is_evaluated_exported_and_continued_like_any(teacher, tmp_path):
    from tltools.evaluation import evaluate_run
    from tltools.export import export_run

    result = distill(teacher.path, image_size=64, epochs=2, compare=False, run_dir=tmp_path / "student")
    config = TrainConfig.from_dict(read_run(tmp_path / "student").config)
    assert config.teacher_run == str(teacher.path.resolve())
    assert (config.distill_temperature, config.distill_alpha, config.distill_unlabeled) == (4.0, 0.5, None)
    evaluated = evaluate_run(result.run)  # on its splits.csv, the teacher's split
    assert evaluated["test"]["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    exported = export_run(result.run.path, "keras")
    assert exported.path.is_file() and exported.path.parent == result.run.path / "exports"
    dataset = load_dataset(_teacher_data(teacher))
    continued = train(config.replace(epochs=1), dataset, from_run=result.run.path, run_dir=tmp_path / "continued")
    assert continued.run.status == COMPLETED and continued.metrics["distillation"]["teacher"] == teacher.run_id
    assert continued.metrics["distillation"]["teacher_logits_cache"] == "hit"  # the logits were cached once
    assert (tmp_path / "continued" / "splits.csv").read_text() == (teacher.path / "splits.csv").read_text()


def _teacher_data(teacher):
    import json

    return json.loads((teacher.path / "dataset.json").read_text())["root"]


@pytest.mark.slow
def test_train_with_teacher_run_distils_with_unlabelled_images_and_class_weights(teacher, tmp_path):
    unlabeled = write_tree(tmp_path / "unlabelled", colour_images(COLOURS, 2, seed=5))
    config = fast_config(teacher_run=teacher.run_id, distill_unlabeled=str(unlabeled), distill_alpha=0.2,
                         class_weights="balanced", epochs=2)
    result = train(config, load_dataset(_teacher_data(teacher)), run_dir=tmp_path / "student")
    assert result.metrics["distillation"]["unlabeled_images"] == 2 * len(COLOURS)
    assert "Distilling teacher run" in (tmp_path / "student" / "log.txt").read_text()
    history = (tmp_path / "student" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 and "objective" in history[0]  # loss = cross-entropy, objective = distillation


def test_train_refuses_a_teacher_run_that_does_not_exist_before_making_a_run_folder(tmp_path):
    config = fast_config(teacher_run=str(tmp_path / "nowhere"))
    with pytest.raises(TLToolsError, match=r"^no training run at .*nowhere"):
        train(config, None, run_dir=tmp_path / "student")
    assert not (tmp_path / "student").exists()


def test_unlabelled_images_need_a_teacher():
    with pytest.raises(TLToolsError, match="distill_unlabeled is set without teacher_run"):
        fast_config(distill_unlabeled="somewhere")


@pytest.mark.slow
def test_distillation_runs_as_a_job_with_its_summary(teacher, tmp_path):
    from tltools import jobs
    from tltools.distill import student_config

    manager = jobs.JobManager(processes=False, runs_root=tmp_path)
    config = student_config(teacher.path, image_size=64, epochs=2)
    job = manager.submit(config, load_dataset(_teacher_data(teacher)), task="tltools.distill.task:distill_task",
                         options={"compare": False})
    manager.wait(job.job_id, timeout=300)
    assert job.status == jobs.COMPLETED, job.error
    assert job.summary["settings"]["teacher"] == teacher.run_id
    assert read_run(job.run_dir).config["teacher_run"] == str(teacher.path.resolve())
    assert any("Distilling teacher run" in line for line in job.log.snapshot()["messages"])
