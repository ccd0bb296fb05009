"""The model card's latency table (when measured) and a distilled model's teacher and comparison."""

import zipfile

import pytest

from tltools.export.model_card import model_card

PREPROCESSING = {"input_size": 160, "resize": "hamming, no crop", "pillow_resample": "HAMMING",
                 "normalisation": "inside the model"}
LATENCY = {"rows": [
    {"format": "keras", "runtime": "keras predict_on_batch", "size_bytes": 5 * 2**20, "median_ms": 20.94,
     "p90_ms": 26.9, "threads": 0, "error": None},
    {"format": "tflite-int8", "runtime": "LiteRT interpreter", "size_bytes": 2**20, "median_ms": 2.61,
     "p90_ms": 3.0, "threads": 2, "error": None},
    {"format": "onnx", "runtime": "", "size_bytes": 0, "median_ms": 0.0, "p90_ms": 0.0, "threads": 0,
     "error": "onnx export failed"},
], "machine": {"cpu": "AMD EPYC", "cores": 2}, "repeats": 50, "warmup": 5, "batch": 1}
DISTILLATION = {
    "settings": {"teacher": "20261201-teacher", "teacher_backbone": "efficientnet_lite2", "teacher_image_size": 260,
                 "temperature": 4.0, "alpha": 0.5, "unlabeled_images": 250},
    "comparison": [
        {"model": "teacher", "backbone": "efficientnet_lite2", "image_size": 260, "test_accuracy": 0.8925,
         "parameters": 4_000_000, "keras_bytes": 17 * 2**20, "int8_bytes": 5 * 2**20, "keras_ms": 40.0, "int8_ms": 9.5},
        {"model": "distilled student", "backbone": "efficientnet_lite0", "image_size": 160, "test_accuracy": 0.87,
         "parameters": 3_000_000, "keras_bytes": 13 * 2**20, "int8_bytes": 4 * 2**20, "keras_ms": 15.0,
         "int8_ms": 2.6},
    ],
}


def test_the_card_shows_the_measured_latency_per_format_and_not_the_failed_ones():
    card = model_card(["a", "b"], PREPROCESSING, {"backbone": "efficientnet_lite0", "latency": LATENCY})
    assert "## Latency" in card and "on AMD EPYC (2 cores)" in card and "of 50 runs after 5 warm-up runs" in card
    assert "| keras | keras predict_on_batch | 5.0 MiB | 20.94 | 26.90 | all |" in card
    assert "| tflite-int8 | LiteRT interpreter | 1.0 MiB | 2.61 | 3.00 | 2 |" in card
    assert "| onnx |" not in card


def test_the_card_of_a_distilled_model_names_its_teacher_and_compares():
    card = model_card(["a", "b"], PREPROCESSING, {"backbone": "efficientnet_lite0", "distillation": DISTILLATION})
    assert "## Distillation" in card and "teacher run `20261201-teacher` (efficientnet_lite2 at 260 px)" in card
    assert "temperature 4" in card and "weight 0.5" in card and "plus 250 unlabelled images" in card
    assert "| distilled student | efficientnet_lite0 | 160 | 87.0% | 3,000,000 | 13.0 MiB | 4.0 MiB | 15.00 | 2.60 |" \
        in card


def test_a_card_without_either_has_neither_section():
    card = model_card(["a", "b"], PREPROCESSING, {"backbone": "efficientnet_lite0"})
    assert "## Latency" not in card and "## Distillation" not in card


@pytest.mark.slow
def test_the_bundle_is_rebuilt_once_latency_is_measured_and_its_card_shows_it(tmp_path):
    from tests.export.helpers import fabricate_run, transfer_model
    from tltools.export import cached_export, export_run
    from tltools.export.latency import measure_run_latency
    from tltools.runs import read_run

    run = fabricate_run(tmp_path / "run", tmp_path / "images", transfer_model())

    def card():
        with zipfile.ZipFile(export_run(run, "bundle").path) as archive:
            return archive.read("README.md").decode()

    assert "## Latency" not in card()
    measure_run_latency(run, formats=("keras",), repeats=2, threads=1)
    assert cached_export(read_run(run), "bundle") is None  # the kept bundle's card is out of date
    assert "## Latency" in card() and "| keras | keras predict_on_batch |" in card()
    assert cached_export(read_run(run), "bundle") is not None
