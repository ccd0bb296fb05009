"""``python -m tltools predict``: ImageNet predictions of a backbone, or a saved model's with its class names."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tltools.cli import main
from tltools.model import build_model, save_model

skimage_data = pytest.importorskip("skimage.data")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """scikit-image's sample photos as PNG files, plus the cup cropped square at exactly 224 px."""
    folder = tmp_path_factory.mktemp("photos")
    coffee = skimage_data.coffee()
    height, width = coffee.shape[:2]
    left = (width - height) // 2
    square = Image.fromarray(coffee[:, left : left + height]).resize((224, 224), Image.Resampling.BILINEAR)
    paths = {"chelsea": folder / "chelsea.png", "coffee": folder / "coffee.png", "cup_224": folder / "cup_224.png"}
    Image.fromarray(skimage_data.chelsea()).save(paths["chelsea"])
    Image.fromarray(coffee).save(paths["coffee"])
    square.save(paths["cup_224"])
    return paths


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run folder holding a 2-class model (random weights, 64 px) saved by tltools as model.keras and model.h5."""
    run = tmp_path_factory.mktemp("run")
    model = build_model("efficientnet_lite0", ["cat", "coffee"], weights="none", input_size=64)
    save_model(model, run / "model.keras", ["cat", "coffee"])
    save_model(model, run / "model.h5", ["cat", "coffee"])
    return run


def predict_json(capsys, *args):
    status = main(["predict", *map(str, args), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return [json.loads(line) for line in captured.out.splitlines()]


@pytest.mark.slow
def test_lite0_recognises_the_cat_and_the_espresso(capsys, photos):
    cat, coffee, cup = predict_json(
        capsys, "--backbone", "efficientnet_lite0", "--top-k", "5",
        photos["chelsea"], photos["coffee"], photos["cup_224"],
    )

    assert cat["image"] == str(photos["chelsea"])
    assert [item["index"] for item in cat["top"][:3]] == [285, 282, 281]  # Egyptian cat, tiger cat, tabby
    assert cat["top"][0]["label"] == "Egyptian cat"
    assert coffee["top"][0]["index"] == 967 and coffee["top"][0]["label"] == "espresso"
    # The whole 600x400 photo through tltools' loader (Hamming-filtered resize to 224x224): 0.912.
    assert coffee["top"][0]["prob"] > 0.9
    # The cup framed square at the input size goes in pixel for pixel.
    assert cup["top"][0]["index"] == 967 and cup["top"][0]["prob"] > 0.9
    for result in (cat, coffee, cup):
        probs = [item["prob"] for item in result["top"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True)


@pytest.mark.slow
def test_python_m_tltools_predict_prints_one_json_line_per_image(photos):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-m", "tltools", "predict", "--backbone", "efficientnet_lite0", "--top-k", "3", "--json",
         str(photos["chelsea"]), str(photos["coffee"])],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False,
    )

    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [line["top"][0]["index"] for line in lines] == [285, 967]


@pytest.mark.slow
def test_readable_output_names_each_image_and_its_classes(capsys, photos):
    status = main(["predict", "--backbone", "efficientnet_lite0", "--top-k", "2", str(photos["chelsea"])])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0] == str(photos["chelsea"])
    assert lines[1].startswith("  1.") and lines[1].endswith("Egyptian cat (285)")
    assert len(lines) == 3


@pytest.mark.slow
def test_other_input_sizes_work_for_the_lite_head(capsys, photos):
    (cat,) = predict_json(capsys, "--backbone", "efficientnet_lite0", "--image-size", "192", photos["chelsea"])

    assert cat["top"][0]["index"] in {281, 282, 285}


@pytest.mark.parametrize("target", [".", "model.keras", "model.h5"])
@pytest.mark.slow
def test_saved_model_predicts_with_its_class_names(capsys, photos, saved_run, target):
    results = predict_json(capsys, saved_run / target, photos["chelsea"], photos["coffee"], "--top-k", "2")

    assert [r["image"] for r in results] == [str(photos["chelsea"]), str(photos["coffee"])]
    for result in results:
        assert sorted(item["label"] for item in result["top"]) == ["cat", "coffee"]
        assert sum(item["prob"] for item in result["top"]) == pytest.approx(1.0, abs=1e-5)


def run_failing(capsys, *args):
    status = main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    return captured.err


def test_a_bad_image_is_one_error_line_and_exit_status_2(capsys, photos, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")

    err = run_failing(capsys, "--backbone", "efficientnet_lite0", photos["chelsea"], broken)

    assert err.startswith("error: ") and str(broken) in err
    assert len(err.splitlines()) == 1


def test_unknown_backbone_lists_the_valid_ones(capsys, photos):
    err = run_failing(capsys, "--backbone", "efficientnet_lite7", photos["chelsea"])

    assert "unknown backbone 'efficientnet_lite7'" in err and "efficientnet_lite0" in err


@pytest.mark.slow
def test_a_model_without_images_is_refused(capsys, saved_run):
    assert "at least one image" in run_failing(capsys, saved_run)


def test_a_missing_model_is_reported(capsys, photos, tmp_path):
    assert "model file not found" in run_failing(capsys, tmp_path / "nothing.keras", photos["chelsea"])


@pytest.mark.slow
def test_image_size_must_fit_a_saved_model(capsys, photos, saved_run):
    err = run_failing(capsys, saved_run, photos["chelsea"], "--image-size", "128")

    assert "--image-size 128 does not fit" in err and "64x64" in err


@pytest.mark.slow
def test_top_k_below_1_is_refused(capsys, photos):
    assert "top_k=0" in run_failing(capsys, "--backbone", "efficientnet_lite0", "--top-k", "0", photos["chelsea"])

