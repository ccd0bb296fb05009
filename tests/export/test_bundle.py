"""The download bundle: its files, its model card, and its predict.py run on its own."""

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from tests.export.helpers import CLASSES, SIZE, fabricate_run, train_paths, transfer_model
from tests.factories import image_bytes
from tltools import __version__
from tltools.data.images import RESAMPLING, load_image
from tltools.export import export_run
from tltools.model import load_model

pytestmark = pytest.mark.slow  # builds, trains or exports real models

MEMBERS = {"README.md", "predict.py", "labels.txt", "preprocessing.json", "model.keras"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-bundle")
    return fabricate_run(root / "run", root / "images", transfer_model())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, run):
    return export_run(run, "bundle", tmp_path_factory.mktemp("bundle") / "pets.zip")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory, bundle):
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(bundle.path) as archive:
        archive.extractall(folder)
    return folder


def test_the_bundle_holds_model_labels_preprocessing_script_and_card(bundle, unpacked, run):
    with zipfile.ZipFile(bundle.path) as archive:
        assert set(archive.namelist()) == MEMBERS
    assert (unpacked / "labels.txt").read_text() == "a\nb\nc\n"
    assert json.loads((unpacked / "preprocessing.json").read_text()) == {
        "input_size": SIZE,
        "color": "RGB",
        "input_range": [0, 255],
        "resize": "hamming, no crop",
        "pillow_resample": "HAMMING",
        "normalisation": "inside the model ((x-127)/128)",
    }
    assert bundle.check["images"] == len(train_paths(run.parent / "images"))
    assert bundle.check["max_prob_diff"] <= 1e-6


def test_the_model_inside_loads_with_plain_keras_and_with_tltools(unpacked, run):
    plain = keras.saving.load_model(unpacked / "model.keras")
    model, names, metadata = load_model(unpacked / "model.keras")
    assert names == CLASSES and metadata["config"]["epochs"] == 3
    pixels = np.stack([load_image(path, SIZE) for path in train_paths(run.parent / "images")]).astype("float32")
    np.testing.assert_allclose(plain.predict(pixels, verbose=0), model.predict(pixels, verbose=0), atol=1e-6)


def test_the_model_card_names_backbone_classes_training_data_metrics_use_and_limits(unpacked, run):
    card = (unpacked / "README.md").read_text()
    assert card.startswith(f"# efficientnet_lite0 image classifier: 3 classes\n\nExported by tltools {__version__}. Files:")
    for expected in (
        "## What it is",
        "tells a, b and c apart",
        f"shape (N, {SIZE}, {SIZE}, 3)",
        "inside the model ((x-127)/128)",
        "## Accuracy",
        "| images | accuracy | loss |",
        "| validation | 81.2% | 0.520 |",
        "| 0 | a |\n| 1 | b |\n| 2 | c |",
        "## Training",
        "| learning rate | 0.001 |",
        f"| input size (px) | {SIZE} |",
        "## Data",
        "- Images: 12 training",
        "python predict.py photo.jpg",
        "`tltools.json`",
        "## Limits",
    ):
        assert expected in card, expected
    assert str(run.parent / "images") not in card  # no local paths in a file that leaves the machine


def test_the_model_card_summarises_full_metrics_in_tables_a_person_reads():
    from tltools.export.model_card import model_card

    per_class = {name: {"precision": 0.9, "recall": recall, "f1": 0.88, "support": 20, "auc": 0.99}
                 for name, recall in (("daisy", 1.0), ("rose", 0.85), ("tulip", 0.95))}
    split = {"accuracy": 0.9333, "macro_f1": 0.9312, "top_k": 2, "top_k_accuracy": 1.0, "loss": 0.21, "ece": 0.04,
             "num_images": 60, "per_class": per_class, "roc_curves": {"daisy": {"fpr": [0.0] * 50, "tpr": [1.0] * 50}},
             "confusion_matrix": [[20, 0, 0], [2, 17, 1], [0, 1, 19]]}
    card = model_card(["daisy", "rose", "tulip"], {"input_size": 224, "resize": "hamming, no crop",
                                                    "pillow_resample": "HAMMING", "normalisation": "inside the model"},
                      {"backbone": "efficientnet_lite0", "metrics": {"val": split, "test": split},
                       "dataset": {"source": "flowers.zip", "layout": "pre-split",
                                   "images per split": {"train": 240, "val": 60, "test": 60}},
                       "config": {"backbone": "efficientnet_lite0", "image_size": None, "unfreeze": "block:6",
                                  "learning_rate": 0.001, "augment": {"flip": "horizontal"}}})
    assert "| validation (60) | 93.3% | 0.931 | 100.0% | 0.210 | 0.040 |" in card
    assert "| images | accuracy | macro F1 | top-2 accuracy | loss | ECE |" in card
    assert "| 1 | rose | 20 | 85.0% | 0.880 |" in card
    assert "trained on the images of `flowers.zip`" in card and "- Images: 240 training, 60 validation, 60 test" in card
    assert "| unfrozen for fine-tuning | block:6 |" in card
    assert "Least reliable classes on the test images: rose (85.0% found)" in card
    assert "fpr" not in card and "[0.0" not in card and "roc_curves" not in card  # raw arrays stay in metrics.json
    assert len(card.splitlines()) < 120


def test_predict_py_imports_no_tltools(unpacked):
    tree = ast.parse((unpacked / "predict.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"json", "sys", "pathlib", "keras", "numpy", "PIL"}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _parity_images() -> dict[str, bytes]:
    pixels = np.random.default_rng(3).integers(0, 256, (50, 80, 4), dtype=np.uint8)
    palette = Image.fromarray(pixels[..., :3]).convert("P")
    palette.info["transparency"] = 0
    return {
        "jpeg shrunk": image_bytes(size=(300, 200), fmt="JPEG", seed=1),
        "png enlarged": image_bytes(size=(20, 30), seed=2),
        "exact size": image_bytes(size=(SIZE, SIZE), seed=3),
        "rgba": _png(Image.fromarray(pixels, "RGBA")),
        "palette with transparency": _png(palette),
        "grey": _png(Image.fromarray(pixels[..., 0], "L")),
    }


@pytest.mark.parametrize("kind", list(_parity_images()))
def test_predict_py_reads_pixels_exactly_as_tltools_does(unpacked, tmp_path, kind):
    spec = importlib.util.spec_from_file_location("bundle_predict", unpacked / "predict.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    path = tmp_path / "image"
    path.write_bytes(_parity_images()[kind])
    np.testing.assert_array_equal(script.load_pixels(path, SIZE, RESAMPLING), load_image(path, SIZE))


def test_predict_py_runs_alone_and_agrees_with_tltools(unpacked, run, tmp_path):
    unseen = run.parent / "images" / "b" / "4.png"  # a val image, 40x30: predict.py resizes it
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes(size=(90, 70), fmt="JPEG", seed=7))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # tltools is not importable
    done = subprocess.run(
        [sys.executable, str(unpacked / "predict.py"), str(unseen), str(photo)],
        cwd=tmp_path, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    blocks = _blocks(done.stdout)
    assert list(blocks) == [str(unseen), str(photo)]
    model, names, _ = load_model(run)
    for path, printed in blocks.items():
        probs = model.predict(load_image(path, SIZE)[None].astype("float32"), verbose=0)[0]
        best = int(probs.argmax())
        assert printed[0][1] == names[best]
        assert printed[0][0] == pytest.approx(probs[best] * 100, abs=0.006)
        assert len(printed) == len(CLASSES)  # top-5 of 3 classes


def _blocks(stdout: str) -> dict[str, list[tuple[float, str]]]:
    """Parse predict.py's output: an image path, then ``  87.50%  label`` lines."""
    blocks = {}
    for line in stdout.splitlines():
        if line.startswith("  "):
            percent, label = line.split(maxsplit=1)
            blocks[current].append((float(percent.rstrip("%")), label))
        else:
            current = line
            blocks[current] = []
    return blocks
