"""A run's splits.csv is the truth of its split: evaluation never re-splits a folder that has changed since."""

import hashlib
import json
import shutil

import pandas as pd
import pytest

import tltools.cli
from tests.factories import COLOURS, colour_images, fast_config, write_tree
from tltools import runs
from tltools.data import load_dataset
from tltools.errors import TLToolsError
from tltools.fileio import read_json, write_json
from tltools.training import train

FOUR_COLOURS = {**COLOURS, "yellow": (210, 200, 40)}  # 4 classes x 10 images = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on 40 generated images with val and test splits."""
    root = write_tree(tmp_path_factory.mktemp("forty"), colour_images(FOUR_COLOURS, 10, seed=1))
    return train(fast_config(epochs=1, val_fraction=0.3, test_fraction=0.2), load_dataset(root)).run


@pytest.fixture
def run_copy(trained, tmp_path):
    """The run and a copy of its images that its dataset.json points to, free to change."""
    data = shutil.copytree(runs.dataset_root(trained), tmp_path / "data")
    folder = shutil.copytree(trained.path, tmp_path / "run")
    write_json(folder / "dataset.json", {**read_json(folder / "dataset.json"), "root": str(data)})
    return runs.read_run(folder), data


def recorded(run) -> dict[str, list[str]]:
    rows = pd.read_csv(run.path / "splits.csv", dtype=str, keep_default_na=False)
    return {split: sorted(rows.loc[rows["split"] == split, "relpath"]) for split in ("train", "val", "test")}


def split_lists(dataset) -> dict[str, list[str]]:
    return {split: sorted(dataset.split(split)["relpath"]) for split in ("train", "val", "test")}


def evaluate_cli(capsys, *arguments):
    status = tltools.cli.main(["evaluate", *map(str, arguments)])
    out, err = capsys.readouterr()
    return status, out, err


def add_image(data, name="red/new.png"):
    write_tree(data, {name: colour_images({"red": COLOURS["red"]}, 1, seed=99)["red/0.png"]})


@pytest.mark.slow
def test_splits_csv_lists_every_image_with_its_split_and_content_hash(trained):
    rows = pd.read_csv(trained.path / "splits.csv", dtype=str, keep_default_na=False)
    assert list(rows.columns) == ["relpath", "label", "split", "sha1"] and len(rows) == 40
    root = runs.dataset_root(trained)
    assert all(hashlib.sha1((root / row.relpath).read_bytes()).hexdigest() == row.sha1 for row in rows.itertuples())


@pytest.mark.slow
def test_an_image_added_since_training_leaves_the_runs_split_exactly_as_recorded(run_copy, capsys):
    run, data = run_copy
    before = recorded(run)
    add_image(data)
    resplit = split_lists(load_dataset(data, **runs.split_settings(run)))
    assert resplit["val"] != before["val"] or resplit["test"] != before["test"], "the data must move a split"
    assert split_lists(runs.load_run_dataset(run)) == before
    status, out, err = evaluate_cli(capsys, run.path, "--json")
    assert status == 0, err
    result = json.loads(out)
    for split in ("val", "test"):  # the trainer's numbers, from the same evaluation on the same images
        assert result[split]["num_images"] == len(before[split])
        assert result[split]["confusion_matrix"] == run.metrics[split]["confusion_matrix"]
        assert result[split]["loss"] == pytest.approx(run.metrics[split]["loss"], abs=1e-4)


@pytest.mark.parametrize("change", ["removed", "altered"])
def test_a_listed_image_gone_or_changed_is_one_clear_error(run_copy, capsys, change):
    run, data = run_copy
    victim = recorded(run)["val"][0]
    if change == "removed":
        (data / victim).unlink()
    else:
        (data / victim).write_bytes((data / recorded(run)["train"][0]).read_bytes())
    expected = rf"1 image\(s\) listed in run {run.run_id}'s split are gone or changed since it trained \(first: {victim}\)"
    with pytest.raises(TLToolsError, match=expected):
        runs.load_run_dataset(run)
    status, out, err = evaluate_cli(capsys, run.path)
    assert status == 2 and out == "" and err.count("\n") == 1 and "evaluate" in err and victim in err


def test_a_run_from_before_hashes_were_listed_keeps_its_split_and_notices_changes(run_copy):
    run, data = run_copy
    rows = pd.read_csv(run.path / "splits.csv", dtype=str, keep_default_na=False)
    rows[["relpath", "label", "split"]].to_csv(run.path / "splits.csv", index=False)
    before = recorded(run)
    add_image(data)
    assert split_lists(runs.load_run_dataset(run)) == before
    victim = before["test"][0]
    (data / victim).write_bytes((data / before["train"][0]).read_bytes())
    with pytest.raises(TLToolsError, match="fingerprint differs"):
        runs.load_run_dataset(run)


@pytest.mark.slow
def test_a_run_needs_data_only_when_its_images_are_gone_and_then_evaluates_the_data_given(run_copy, capsys):
    run, data = run_copy
    moved = shutil.move(data, data.with_name("moved"))
    status, _, err = evaluate_cli(capsys, run.path)
    assert status == 2 and "is gone" in err
    status, out, err = evaluate_cli(capsys, run.path, moved, "--json")
    assert status == 0, err
    assert json.loads(out)["val"]["num_images"] == len(recorded(run)["val"])


def test_a_process_that_exited_but_was_not_reaped_counts_as_gone():
    """A worker killed with its server may linger as a zombie; its run must still read back as interrupted."""
    import os
    import subprocess
    import sys

    from tests.waiting import wait_until

    child = subprocess.Popen([sys.executable, "-c", "pass"])  # never waited for: a zombie once it exits
    try:
        wait_until(lambda: not runs.pid_alive(child.pid), 30, "an exited, unreaped child still counts as alive")
        assert runs.pid_alive(os.getpid()) and not runs.pid_alive(0) and not runs.pid_alive(None)
        assert not runs.owner_alive({"pid": child.pid})
    finally:
        child.wait()


def test_a_run_without_a_model_cannot_be_adapted_or_distilled(tmp_path):
    from tltools.adapt import adapt
    from tltools.distill import distill

    writer = runs.RunWriter(tmp_path / "untrained")
    writer.set_status(runs.FAILED, error="stopped before its first epoch")
    with pytest.raises(TLToolsError, match="^teacher run untrained has no model.keras; train it first$"):
        distill(writer.path, run_dir=tmp_path / "student")
    with pytest.raises(TLToolsError, match="^run untrained has no model.keras; train it first$"):
        adapt(writer.path, tmp_path, method="adabn", run_dir=tmp_path / "adapted")
    assert not (tmp_path / "student").exists() and not (tmp_path / "adapted").exists()
    (writer.path / "model.keras").write_bytes(b"a model")
    assert runs.read_trained_run(writer.path).run_id == "untrained"
