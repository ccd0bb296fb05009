"""The warm worker builds the last job's model ahead (``tltools.model.builder.prebuild``); the job's build gets it."""

from pathlib import Path

import numpy as np
import pytest

from tltools import jobs
from tltools.model import builder
from tests.factories import fast_config


@pytest.fixture(autouse=True)
def _nothing_parked():
    builder._PREBUILT.clear()
    yield
    builder._PREBUILT.clear()


@pytest.mark.slow
def test_a_prebuilt_model_is_handed_out_once_to_the_same_build_and_equals_a_fresh_one():
    options = dict(weights="imagenet", input_size=64, pooling="avg", dense_units=0, dropout=0.2, seed=3)
    assert builder.prebuild("efficientnet_lite0", 3, **options)
    parked = next(iter(builder._PREBUILT.values()))
    assert builder.build_model("efficientnet_lite0", 4, **options) is not parked, "other classes: built afresh"
    assert builder.build_model("efficientnet_lite0", ["a", "b", "c"], **options) is parked
    fresh = builder.build_model("efficientnet_lite0", 3, **options)
    assert fresh is not parked, "handed out once"
    for mine, theirs in zip(parked.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_builds_that_may_differ_are_not_built_ahead(tmp_path):
    assert not builder.prebuild("efficientnet_lite0", 3, input_size=64, seed=None)
    assert not builder.prebuild("efficientnet_lite0", 3, input_size=64, seed=1,
                                weights=str(tmp_path / "mine.weights.h5"))
    assert builder._PREBUILT == {}


def test_the_next_warm_worker_is_told_the_model_of_a_plain_run_or_sweep_only(colours):
    config = fast_config(seed=5)
    plain = jobs.Job("00000001", None, config, colours, Path("run"))
    assert jobs._prebuild_spec(plain) == {
        "backbone": config.backbone, "classes": len(colours.classes), "weights": config.weights,
        "input_size": config.image_size, "pooling": config.pooling, "dense_units": config.dense_units,
        "dropout": config.dropout, "seed": 5}
    plain.task = jobs.LR_FINDER_TASK
    assert jobs._prebuild_spec(plain)["classes"] == len(colours.classes)
    plain.task = jobs.AUTO_TRAINER
    assert jobs._prebuild_spec(plain) is None, "auto mode builds many models"
    plain.task, plain.from_run = None, Path("earlier")
    assert jobs._prebuild_spec(plain) is None, "a continued run loads its model"


@pytest.mark.slow
def test_a_retrain_in_the_warm_worker_uses_the_model_built_ahead_after_the_previous_job(colours, tmp_path):
    manager = jobs.JobManager(runs_root=tmp_path, processes=True)
    try:
        first = manager.submit(fast_config(epochs=1, seed=7), colours)
        manager.wait(first.job_id, timeout=300)
        assert first.status == jobs.COMPLETED, first.error
        assert manager.wait_warm(300), "a warm worker is started once the job has ended"
        second = manager.submit(fast_config(epochs=1, seed=7, learning_rate=3e-3), colours)
        manager.wait(second.job_id, timeout=300)
        assert second.status == jobs.COMPLETED, second.error
        output = (second.folder / "worker.log").read_text()
        assert "built ahead: ('efficientnet_lite0', 3," in output and "the model built ahead was used" in output, output
    finally:
        manager.close()
