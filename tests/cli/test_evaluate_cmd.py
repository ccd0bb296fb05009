"""``python -m tltools evaluate`` through the real CLI entry point."""

import json

import numpy as np
import pytest

import tltools.cli
from tests.factories import class_images, write_tree
from tltools.data import load_dataset
from tltools.model import build_model, save_model
from tltools.runs import COMPLETED, RunWriter

CLASSES = ["ant", "bee", "cat"]
RUN_SPLIT = {"val_fraction": 0.5, "test_fraction": 0.25, "seed": 3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("data"), class_images(CLASSES, per_class=8))


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder whose model always answers "ant" and whose config sets its own split."""
    model = build_model("mobilenet_v3_small", CLASSES, weights="none", input_size=64)
    kernel, _ = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([np.zeros_like(kernel), np.array([4.0, 0.0, 0.0], "float32")])
    writer = RunWriter(tmp_path_factory.mktemp("run"))
    writer.set_status(COMPLETED)
    save_model(model, writer.model_path, CLASSES)
    writer.write_json("config.json", {"backbone": "mobilenet_v3_small", "epochs": 1, **RUN_SPLIT})
    return writer.path


def evaluate(capsys, *arguments):
    status = tltools.cli.main(["evaluate", *map(str, arguments)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_json_reuses_the_runs_split(capsys, run_folder, data):
    status, out, _ = evaluate(capsys, run_folder, data, "--json")
    assert status == 0
    result = json.loads(out)
    expected = load_dataset(data, **RUN_SPLIT)
    assert result["classes"] == CLASSES
    for split in ("val", "test"):
        counts = expected.class_counts(split)
        assert result[split]["num_images"] == sum(counts.values()) > 0
        assert result[split]["confusion_matrix"] == [[counts[name], 0, 0] for name in CLASSES]
        assert result[split]["accuracy"] == pytest.approx(counts["ant"] / sum(counts.values()))


@pytest.mark.slow
def test_model_file_uses_the_default_split(capsys, run_folder, data):
    status, out, _ = evaluate(capsys, run_folder / "model.keras", data, "--json", "--top-k", "2")
    assert status == 0
    result = json.loads(out)
    assert result["test"] is None
    assert result["val"]["num_images"] == sum(load_dataset(data).class_counts("val").values())
    assert result["val"]["top_k"] == 2


@pytest.mark.slow
def test_one_split(capsys, run_folder, data):
    status, out, _ = evaluate(capsys, run_folder, data, "--json", "--split", "test")
    result = json.loads(out)
    assert status == 0 and result["val"] is None and result["test"]["num_images"] > 0


@pytest.mark.slow
def test_text_summary(capsys, run_folder, data):
    status, out, _ = evaluate(capsys, run_folder, data, "--batch-size", "4")
    assert status == 0
    counts = load_dataset(data, **RUN_SPLIT).class_counts("val")
    total = sum(counts.values())
    assert f"== val: {total} images ==" in out and "== test:" in out
    assert f"accuracy          {counts['ant'] / total:.2%}" in out
    assert "top-3 accuracy    100.00%" in out
    assert "(the run's split settings)" in out
    for header in ("ECE", "macro F1", "loss", "precision", "recall", "Confusion matrix"):
        assert header in out
    matrix_row = next(line for line in out.splitlines() if line.split()[:1] == ["bee"] and len(line.split()) == 4)
    assert matrix_row.split()[1:] == [str(counts["bee"]), "0", "0"]


def test_classes_that_do_not_match_exit_2(capsys, run_folder, tmp_path):
    other = write_tree(tmp_path / "other", class_images(["ant", "bee", "dog"], per_class=3))
    status, out, err = evaluate(capsys, run_folder, other)
    assert status == 2 and out == ""
    assert err.startswith("error: the model's classes don't match")
    assert "'cat'" in err and "'dog'" in err


def test_missing_test_split_exits_2(capsys, run_folder, data):
    status, _, err = evaluate(capsys, run_folder / "model.keras", data, "--split", "test")
    assert status == 2
    assert "no test images" in err


@pytest.mark.parametrize(("option", "message"), [("--top-k", "top_k=0"), ("--batch-size", "batch_size=0")])
def test_bad_numbers_exit_2(capsys, run_folder, data, option, message):
    status, _, err = evaluate(capsys, run_folder, data, option, "0")
    assert status == 2 and message in err


def test_a_model_file_without_data_exits_2(capsys, run_folder):
    status, out, err = evaluate(capsys, run_folder / "model.keras")
    assert status == 2 and out == "" and "give the DATA" in err


def test_missing_model_exits_2(capsys, tmp_path, data):
    status, _, err = evaluate(capsys, tmp_path / "nowhere", data)
    assert status == 2 and "model file not found" in err
