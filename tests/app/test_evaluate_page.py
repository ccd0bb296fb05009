"""The Evaluate page, driven through AppTest on a real one-epoch run: metrics, charts, mistakes, Grad-CAM."""

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import fast_config
from tltools import app_state
from tltools.fileio import read_json, write_json
from tltools.training import train

TIMEOUT = 120
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def run(colours):
    """One epoch at the default learning rate: good enough to evaluate, bad enough to make mistakes."""
    result = train(fast_config(epochs=1, test_fraction=0.2), colours)
    assert result.metrics["val"]["misclassified"], "the gallery tests need a run that makes mistakes"
    return result.run


@pytest.fixture
def copy_run(run):
    """Copy the run folder beside it, to change the copy without touching the shared run; removed afterwards."""
    copies = []

    def copy(name: str) -> Path:
        copies.append(Path(shutil.copytree(run.path, run.path.with_name(f"{run.run_id}-{name}"))))
        return copies[-1]

    yield copy
    for folder in copies:
        shutil.rmtree(folder, ignore_errors=True)


def open_evaluate(run_path) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.SELECTED_RUN] = str(run_path)
    app.run().switch_page("pages/evaluate.py").run()
    assert not app.exception, app.exception
    return app


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def heatmap(app: AppTest, index: int = 0) -> np.ndarray:
    """The z values of the index-th chart's first trace (Plotly sends arrays as base64 "bdata")."""
    z = json.loads(app.get("plotly_chart")[index].proto.spec)["data"][0]["z"]
    if isinstance(z, dict):
        shape = [int(side) for side in str(z["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape).astype(float)
    return np.asarray(z, dtype=float)


@pytest.mark.slow
def test_shows_the_runs_metrics_and_charts_for_val_and_test(run):
    app = open_evaluate(run.path)
    assert app.selectbox(key="evaluate_run").value == str(run.path)
    assert [tab.label for tab in app.tabs] == ["Validation", "Test"]
    assert metric(app, "Accuracy") == f"{run.metrics['val']['accuracy']:.1%}"
    assert metric(app, "Weighted F1") == f"{run.metrics['val']['weighted_f1']:.3f}"  # top-5 of 3 classes says nothing
    assert len(app.get("plotly_chart")) == 4  # confusion matrix and ROC per split
    np.testing.assert_array_equal(heatmap(app), run.metrics["val"]["confusion_matrix"])


@pytest.mark.slow
def test_toggling_normalised_turns_counts_into_row_shares(run):
    app = open_evaluate(run.path)
    counts = heatmap(app)
    app.toggle(key="evaluate_normalised_val").set_value(True).run()
    shares = heatmap(app)
    assert not np.array_equal(counts, shares)
    np.testing.assert_allclose(shares, counts / counts.sum(axis=1, keepdims=True))


@pytest.mark.slow
def test_misclassified_gallery_and_its_grad_cam_view_render(run):
    app = open_evaluate(run.path)
    mistakes = run.metrics["val"]["misclassified"]
    assert f"Misclassified images ({len(mistakes)})" in [header.value for header in app.subheader]
    gallery = app.get("image")[0]
    first = mistakes[0]
    assert len(gallery.value) == min(len(mistakes), 12)
    assert gallery.captions[0] == f"{first['true']} → {first['predicted']} ({first['confidence']:.0%})"
    app.toggle(key="evaluate_gradcam_val").set_value(True).run()
    assert not app.exception, app.exception
    overlays = app.get("image")[0]
    assert overlays.captions == gallery.captions and overlays.value != gallery.value


def test_missing_dataset_images_are_reported_not_fatal(run, copy_run):
    moved = copy_run("moved")
    write_json(moved / "dataset.json", {**read_json(moved / "dataset.json"), "root": str(moved / "gone")})
    app = open_evaluate(moved)
    assert any("gone from" in warning.value for warning in app.warning)
    assert metric(app, "Accuracy") == f"{run.metrics['val']['accuracy']:.1%}"


@pytest.mark.slow
def test_an_interrupted_run_without_metrics_can_be_evaluated_now(run, copy_run):
    killed = copy_run("killed")
    (killed / "metrics.json").unlink()
    write_json(killed / "status.json", {**read_json(killed / "status.json"), "status": "running", "pid": None})
    app = open_evaluate(killed)
    assert "⚠ interrupted" in app.selectbox(key="evaluate_run").format_func(str(killed))
    assert any("⚠ interrupted" in caption.value and "not completed" in caption.value for caption in app.caption)
    assert not app.metric
    app.button(key="evaluate_now").click().run()
    assert not app.exception, app.exception
    assert metric(app, "Accuracy") == f"{run.metrics['val']['accuracy']:.1%}"
    assert read_json(killed / "metrics.json")["val"]["accuracy"] == pytest.approx(run.metrics["val"]["accuracy"])


def test_ece_is_explained_and_roc_curves_are_drawn_only_where_they_inform(run):
    app = open_evaluate(run.path)  # (the per-class table's full height is checked in the browser test)
    assert any(caption.value.startswith(f"{run.metrics['val']['num_images']} images. ECE: ") for caption in app.caption)
    weak = [name for name, row in run.metrics["val"]["per_class"].items() if row["auc"] is not None and row["auc"] < 0.99]
    charts = len(app.get("plotly_chart"))
    if weak:
        assert charts == 4
    else:
        assert any("would sit in the top-left corner" in caption.value for caption in app.caption)


def test_without_a_choice_the_page_opens_on_the_best_run_for_the_loaded_data(run, copy_run, colours):
    better = copy_run("better")
    write_json(better / "metrics.json", {**read_json(better / "metrics.json"),
                                         "val": {**run.metrics["val"], "accuracy": 1.0}})
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state[app_state.DATASET] = colours
    app.run().switch_page("pages/evaluate.py").run()
    assert not app.exception, app.exception
    picker = app.selectbox(key="evaluate_run")
    assert picker.value == str(better)
    assert "100.0% val" in picker.format_func(str(better))
    assert [link.value for link in app.get("page_link")][-1].startswith("Next:")
