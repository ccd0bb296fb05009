"""``python -m tltools export``: what it writes and prints, and its one-line errors with exit status 2."""

import re

import pytest

from tests.export.helpers import CLASSES, fabricate_run, transfer_model
from tltools.cli import main
from tltools.export import cached_export
from tltools.fileio import read_json
from tltools.model import load_model
from tltools.runs import read_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-cli")
    return fabricate_run(root / "run", root / "images", transfer_model())


def _export(capsys, *args) -> tuple[int, str, str]:
    status = main(["export", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.slow
def test_a_run_exports_checked_on_its_training_images(run, tmp_path, capsys):
    status, out, err = _export(capsys, run, "--format", "keras", "--out", tmp_path / "pets.keras")
    assert status == 0, err
    lines = out.splitlines()
    assert re.fullmatch(rf"wrote {re.escape(str(tmp_path / 'pets.keras'))} \(keras, \d+\.\d MiB\)", lines[0])
    assert re.fullmatch(r"check on 12 images: max probability difference 0, top-1 agreement 100\.0%", lines[1])
    assert len(lines) == 2
    assert load_model(tmp_path / "pets.keras")[1] == CLASSES


@pytest.mark.slow
def test_a_run_is_exported_into_its_exports_folder_once_with_the_check_beside_it(run, tmp_path, capsys):
    kept = run / "exports" / f"{run.name}_float32.tflite"
    status, out, err = _export(capsys, run, "--format", "tflite")
    assert status == 0, err
    assert out.splitlines()[0].startswith(f"wrote {kept} (tflite, ")
    assert any(line.startswith("note: the file holds no class names") and "labels.txt" in line
               for line in out.splitlines())  # a TFLite user learns where the class names are
    sidecar = read_json(kept.with_name(kept.name + ".json"))
    assert sidecar["check"]["images"] == 12 and sidecar["format"] == "tflite"
    assert cached_export(read_run(run), "tflite").check == sidecar["check"]  # what the Runs page offers
    built = kept.stat().st_mtime_ns
    status, again, _ = _export(capsys, run, "--format", "tflite", "--out", tmp_path / "copy.tflite")
    assert status == 0 and kept.stat().st_mtime_ns == built  # reused, not rebuilt
    assert (tmp_path / "copy.tflite").read_bytes() == kept.read_bytes()
    assert again.splitlines()[1:] == out.splitlines()[1:]


@pytest.mark.slow
def test_a_model_file_exports_int8_with_an_image_folder(run, tmp_path, capsys):
    out_path = tmp_path / "pets_int8.tflite"
    status, out, err = _export(
        capsys, run / "model.keras", "--format", "tflite-int8", "--out", out_path, "--images", run.parent / "images"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"wrote {out_path} (tflite-int8, ") and out_path.is_file()
    assert re.fullmatch(r"check on 15 images: max probability difference [\d.e-]+, top-1 agreement \d+\.\d%", lines[1])
    assert lines[2] == "note: input: uint8 RGB pixels 0..255 (scale 1, zero point 0); output: float32 probabilities"


@pytest.mark.slow
def test_a_model_file_without_images_is_written_unchecked_and_says_so(run, tmp_path, capsys):
    status, out, err = _export(capsys, run / "model.keras", "--format", "h5", "--out", tmp_path / "pets.h5")
    assert status == 0, err
    assert out.splitlines()[1:] == ["note: not checked: no images were given to check it on"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tflite-int8", "--out", "m.tflite"], r"needs representative images .*--images DIR"),
        (["--format", "tflite", "--out", "m.zip"], r"the tflite export is a \.tflite file; got 'm\.zip'"),
        (["--format", "keras", "--out", "m.keras", "--images", "no-such-folder"], r"image folder not found"),
    ],
    ids=["int8-without-images", "wrong-suffix", "missing-image-folder"],
)
@pytest.mark.slow
def test_unusable_requests_of_a_model_file_are_one_line_errors(run, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    status, out, err = _export(capsys, run / "model.keras", *args)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(message, err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_model_file_needs_out(run, capsys):
    status, out, err = _export(capsys, run / "model.keras", "--format", "keras")
    assert status == 2 and out == "" and "give --out PATH" in err


def test_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    status, _, err = _export(capsys, tmp_path / "no-run", "--format", "keras", "--out", tmp_path / "m.keras")
    assert status == 2 and err.startswith("error: no training run at ")


def test_a_missing_model_file_is_a_one_line_error(tmp_path, capsys):
    status, _, err = _export(capsys, tmp_path / "gone.keras", "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert status == 2 and err.startswith(f"error: model file not found: {tmp_path / 'gone.keras'}")


@pytest.mark.slow
def test_an_unknown_format_is_a_usage_error_listing_the_formats(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run), "--format", "coreml", "--out", str(tmp_path / "m.mlmodel")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'coreml'" in capsys.readouterr().err
