"""Domain adaptation: AdaBN changes only BatchNorm statistics; adapt writes a new run and reports; bad input is one line."""

import zipfile

import numpy as np
import pytest

from tests.factories import COLOURS, colour_images, fast_config, write_tree
from tltools.adapt import ADAPT_FILE, adapt, adapt_batchnorm, batchnorm_layers, target_images
from tltools.adapt.corrupt import corrupt_images
from tltools.adapt.shift import make_shifted_target
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.model import build_model
from tltools.paths import home_dir
from tltools.runs import COMPLETED, STOPPED, RunWriter, read_run
from tltools.training import TrainConfig, train


@pytest.mark.slow
def test_adabn_changes_only_batchnorm_statistics_to_the_targets():
    model = build_model("efficientnet_lite0", 3, input_size=64, seed=0)
    before = {weight.path: weight.numpy().copy() for weight in model.weights}
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(200, 20, (20, 64, 64, 3)), 0, 255).astype(np.uint8)  # bright: far from ImageNet
    layers = adapt_batchnorm(model, images, batch_size=8)
    changed = {weight.path for weight in model.weights if not np.allclose(before[weight.path], weight.numpy())}
    assert layers == len(batchnorm_layers(model)) > 0
    assert changed and all(path.endswith(("moving_mean", "moving_variance")) for path in changed)
    assert not model.get_layer("base").trainable and not any(layer.trainable for layer in batchnorm_layers(model))
    first = batchnorm_layers(model)[0]
    assert first.momentum == pytest.approx(0.99)  # restored


@pytest.mark.slow
def test_adabn_relative_to_the_source_leaves_a_model_unchanged_on_its_own_domain():
    """The frozen base keeps ImageNet's statistics; relative to the source, the same domain changes nothing."""
    model = build_model("efficientnet_lite0", 3, input_size=64, seed=0)
    norms = batchnorm_layers(model)
    before = [(layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()) for layer in norms]
    images = np.random.default_rng(1).integers(0, 256, (24, 64, 64, 3)).astype(np.uint8)
    adapt_batchnorm(model, images, source_images=images, batch_size=8)
    for layer, (mean, variance) in zip(norms, before):
        assert np.allclose(layer.moving_mean.numpy(), mean, atol=1e-4)
        assert np.allclose(layer.moving_variance.numpy(), variance, rtol=1e-3, atol=1e-5)
    shifted = np.clip(images.astype(np.float32) * [1.3, 0.9, 0.6], 0, 255).astype(np.uint8)
    adapt_batchnorm(model, shifted, source_images=images, batch_size=8)
    assert not np.allclose(norms[0].moving_mean.numpy(), before[0][0], atol=1e-3)  # a colour cast moves the first layer


def test_adabn_needs_two_images():
    model = build_model("efficientnet_lite0", 3, input_size=64, seed=0)
    with pytest.raises(TLToolsError, match="AdaBN needs at least 2 target images"):
        adapt_batchnorm(model, np.zeros((1, 64, 64, 3), np.uint8))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    data = write_tree(tmp_path_factory.mktemp("colours"), colour_images(COLOURS, 12, seed=0))
    return train(fast_config(val_fraction=0.2, test_fraction=0.3, epochs=4), load_dataset(data)).run


@pytest.fixture(scope="module")
def shifted(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("shift") / "target"
    counts = make_shifted_target(None, out, seed=0, run=source.path)
    assert counts["unlabeled"] + counts["labeled"] == source.metrics["test"]["num_images"]
    return out


def _files_below(folder):
    return {path for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_both_methods_write_a_run_with_every_stage_measured(source, shifted, tmp_path):
    home_before = _files_below(home_dir())
    lines = []
    result = adapt(source.path, shifted / "unlabeled", target_labels=shifted / "labeled", method="both",
                   thresholds=(0.34, 0.4), epochs_per_round=2, run_dir=tmp_path / "adapted", on_message=lines.append)
    run = read_run(tmp_path / "adapted")
    assert run.status == COMPLETED and run.model_path.is_file() and (run.path / ADAPT_FILE).is_file()
    assert TrainConfig.from_dict(run.config).backbone == "efficientnet_lite0"
    assert list(result.report["stages"]) == ["source-only", "adabn", "adabn + self-train"]
    for facts in result.report["stages"].values():
        assert 0.0 <= facts["labelled_accuracy"] <= 1.0 and 0.0 < facts["mean_confidence"] <= 1.0
    assert result.report["stages"]["source-only"]["agreement_with_source_only"] == 1.0
    rounds = result.report["rounds"]
    assert [record["threshold"] for record in rounds] == [0.34, 0.4]
    assert all(0 <= record["pseudo_labels"] <= record["of_images"] for record in rounds)
    assert any(record["pseudo_labels"] > 0 for record in rounds)
    assert any(line.startswith("self-training round 1: threshold 0.34") for line in lines)
    assert result.report["source_views"] == 2 and not result.report["stopped"]
    assert result.report["unfreeze"] is None  # the default: the head alone
    assert any(line.startswith("computing features of 2 corrupted copies") for line in lines)
    assert _files_below(home_dir()) == home_before  # nothing outside the new run folder (and the feature cache)


@pytest.mark.slow
def test_adabn_from_a_zip_without_labels_reports_agreement_and_confidence(source, shifted, tmp_path):
    archive = tmp_path / "target.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((shifted / "unlabeled").iterdir()):
            bundle.write(path, f"photos/{path.name}")
    result = adapt(source.path, archive, method="adabn", run_dir=tmp_path / "adapted")
    stages = result.report["stages"]
    assert list(stages) == ["source-only", "adabn"]
    assert "labelled_accuracy" not in stages["adabn"]
    assert 0.0 <= stages["adabn"]["agreement_with_source_only"] <= 1.0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["adapted", "target.zip"]  # the zip went to a temp dir


def test_target_folder_without_images_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing")
    with pytest.raises(TLToolsError, match=r"^no image files in .*empty; give a folder or a .zip") as error:
        target_images(tmp_path / "empty", tmp_path)
    assert "\n" not in str(error.value)


def test_bad_input_is_one_line_and_leaves_no_run(tmp_path):
    with pytest.raises(TLToolsError, match="no training run at"):
        adapt(tmp_path / "nowhere", tmp_path)
    with pytest.raises(TLToolsError, match="method='magic' is unknown; use one of adabn, self-train, both"):
        adapt(tmp_path / "nowhere", tmp_path, method="magic")
    with pytest.raises(TLToolsError, match="must be rising numbers between 0 and 1"):
        adapt(tmp_path / "nowhere", tmp_path, thresholds=(0.9, 0.8))
    writer = RunWriter(tmp_path / "run")
    writer.set_status(COMPLETED)
    writer.model_path.write_bytes(b"unused")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TLToolsError, match="no image files in"):
        adapt(writer.path, tmp_path / "empty", run_dir=tmp_path / "adapted")
    assert not (tmp_path / "adapted").exists()


class StopAfterRound:
    """A stop request that turns true once self-training has finished its first round."""

    def __init__(self):
        self.requested = False

    def __call__(self, line):
        if line.startswith("self-training round 1"):
            self.requested = True


@pytest.mark.slow
def test_stop_ends_self_training_after_the_current_round_and_keeps_the_model(source, shifted, tmp_path):
    stop = StopAfterRound()
    result = adapt(source.path, shifted / "unlabeled", method="self-train", thresholds=(0.34, 0.4, 0.5),
                   epochs_per_round=1, source_views=0, run_dir=tmp_path / "adapted", on_message=stop, stop=stop)
    run = read_run(tmp_path / "adapted")
    assert run.status == STOPPED and run.model_path.is_file()
    assert result.report["stopped"] and [record["round"] for record in result.report["rounds"]] == [1]
    assert list(result.report["stages"]) == ["source-only", "self-train"]


def test_corrupted_copies_are_seeded_uint8_images_that_differ_from_the_source():
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3)).astype(np.uint8)
    first = corrupt_images(images, np.random.default_rng(7))
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, corrupt_images(images, np.random.default_rng(7)))
    assert not np.array_equal(first, corrupt_images(images, np.random.default_rng(8)))
    assert all(np.abs(first[i].astype(int) - images[i]).mean() > 5 for i in range(len(images)))


def test_negative_source_views_is_one_line(tmp_path):
    with pytest.raises(TLToolsError, match=r"source_views=-1 must be 0 or more"):
        adapt(tmp_path / "nowhere", tmp_path, source_views=-1)


@pytest.mark.slow
def test_adapt_runs_as_a_job_with_progress_messages_and_the_report_as_summary(source, shifted, tmp_path):
    from tltools.adapt.task import ADAPT_TASK, latest_adapt_job, submit_adapt
    from tltools.jobs import COMPLETED as JOB_COMPLETED
    from tltools.jobs import JobManager

    manager = JobManager(runs_root=tmp_path / "runs", processes=False)
    job = submit_adapt(manager, source, shifted / "unlabeled", target_labels=shifted / "labeled", method="adabn",
                       owner="me")
    assert job.task == ADAPT_TASK and latest_adapt_job(manager, "me", source) is job
    assert latest_adapt_job(manager, "someone else", source) is None
    manager.wait(job.job_id, timeout=300)
    assert job.status == JOB_COMPLETED, job.error
    assert list(job.summary["stages"]) == ["source-only", "adabn"]
    assert job.metrics == job.summary["stages"]["adabn"]
    assert read_run(job.run_dir).status == COMPLETED and (job.run_dir / ADAPT_FILE).is_file()
    messages = job.log.snapshot()["messages"]
    assert any(line.startswith("AdaBN: statistics of") for line in messages)


@pytest.mark.slow
def test_self_training_fine_tunes_only_the_top_block_and_the_head(source, shifted, tmp_path):
    from tltools.model.io import load_model

    lines = []
    result = adapt(source.path, shifted / "unlabeled", method="self-train", thresholds=(0.34,), epochs_per_round=2,
                   source_views=1, unfreeze="top-block", run_dir=tmp_path / "adapted", on_message=lines.append)
    assert result.report["unfreeze"] == "block:7"
    assert any(line.startswith("fine-tuning the base from block:7 on") for line in lines)
    before = {weight.path: weight.numpy() for weight in load_model(source.path)[0].weights}
    adapted = load_model(tmp_path / "adapted")[0]
    changed = {weight.path for weight in adapted.weights if not np.allclose(before[weight.path], weight.numpy())}
    assert any("block7" in path for path in changed)
    assert not any("block1" in path or "block6" in path for path in changed)
    assert not any(path.endswith(("moving_mean", "moving_variance")) for path in changed)  # BatchNorm in inference mode
    assert not adapted.get_layer("base").trainable


@pytest.mark.slow
def test_an_unfreeze_setting_the_backbone_lacks_is_one_line_before_any_run_folder(source, tmp_path):
    write_tree(tmp_path / "target", colour_images(COLOURS, 2, seed=1))
    with pytest.raises(TLToolsError, match=r"^unfreeze='block:99': efficientnet_lite0 has no block 99") as error:
        adapt(source.path, tmp_path / "target", method="self-train", unfreeze="block:99", run_dir=tmp_path / "adapted")
    assert "\n" not in str(error.value) and not (tmp_path / "adapted").exists()
