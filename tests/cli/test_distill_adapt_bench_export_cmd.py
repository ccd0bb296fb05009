"""``python -m tltools distill``, ``adapt`` and ``bench-export``: happy paths and one-line errors with exit status 2."""

import json

import pytest

from tests.export.helpers import fabricate_run, transfer_model
from tests.factories import COLOURS, colour_images, fast_config, write_tree
from tltools.cli import main
from tltools.data import load_dataset
from tltools.runs import COMPLETED, read_run
from tltools.training import train


def _main(capsys, *args) -> tuple[int, str, str]:
    status = main([*map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    data = write_tree(tmp_path_factory.mktemp("colours"), colour_images(COLOURS, 10, seed=0))
    return train(fast_config(val_fraction=0.2, test_fraction=0.3, epochs=3), load_dataset(data)).run


@pytest.mark.parametrize("command", [["distill", "{missing}"], ["adapt", "{missing}", "{missing}"],
                                     ["bench-export", "{missing}"]])
def test_a_run_that_does_not_exist_is_one_line_exit_2(capsys, tmp_path, command):
    missing = tmp_path / "no-such-run"
    status, out, err = _main(capsys, *[part.format(missing=missing) for part in command])
    assert status == 2 and out == ""
    assert err.startswith(f"error: no training run at {missing}") and err.count("\n") == 1


def test_adapt_target_without_images_is_one_line_exit_2(capsys, tmp_path):
    from tltools.runs import RunWriter

    writer = RunWriter(tmp_path / "run")
    writer.set_status(COMPLETED)
    writer.model_path.write_bytes(b"unused")
    (tmp_path / "target").mkdir()
    status, _, err = _main(capsys, "adapt", writer.path, tmp_path / "target", "--out", tmp_path / "adapted")
    assert status == 2 and err.startswith("error: no image files in") and err.count("\n") == 1
    assert not (tmp_path / "adapted").exists()


@pytest.mark.slow
def test_distill_prints_the_student_run_and_metrics(capsys, source, tmp_path):
    status, out, err = _main(capsys, "distill", source.path, "--image-size", "64", "--epochs", "2", "--no-compare",
                             "--out", tmp_path / "student")
    assert status == 0, err
    assert f"run: {tmp_path / 'student'}" in out and "test: accuracy" in out
    assert read_run(tmp_path / "student").status == COMPLETED


@pytest.mark.slow
def test_adapt_adabn_prints_each_stage_as_json(capsys, source, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    for path in sorted(source_images(source))[:6]:
        (target / path.name).write_bytes(path.read_bytes())
    status, out, err = _main(capsys, "adapt", source.path, target, "--method", "adabn", "--json",
                             "--out", tmp_path / "adapted")
    assert status == 0, err
    report = json.loads(out)
    assert list(report["stages"]) == ["source-only", "adabn"] and report["unlabelled_images"] == 6


def source_images(run):
    from tltools.runs import dataset_root

    return [path for path in dataset_root(run).rglob("*.png")]


@pytest.mark.slow
def test_bench_export_prints_the_latency_table(capsys, tmp_path):
    run = fabricate_run(tmp_path / "run", tmp_path / "images", transfer_model())
    status, out, err = _main(capsys, "bench-export", run, "--formats", "keras", "tflite-int8", "--repeats", "2",
                             "--threads", "1")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("latency per image at batch 1: median of 2 runs after 5 warm-up runs")
    assert lines[2].split()[0] == "keras" and lines[3].split()[0] == "tflite-int8"
    assert (run / "exports" / "latency.json").is_file()
