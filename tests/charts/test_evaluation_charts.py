"""Evaluation figures: the figure data are the metrics, predictions and histories they were given."""

import numpy as np
import pandas as pd
import pytest

from tltools.charts.evaluation import (class_colours, confusion_matrix_figure, history_metrics,
                                      informative_roc_classes, roc_figure, runs_overlay_figure, top_k_figure)
from tltools.evaluation import classification_metrics
from tltools.prediction import Prediction, top_classes

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def metrics():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    probs = np.array([
        [0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1], [0.5, 0.4, 0.1],
        [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4],
    ])
    return classification_metrics(y_true, probs, CLASSES, top_k=2)


def test_confusion_matrix_counts_are_the_metrics_with_true_on_y(metrics):
    [heatmap] = confusion_matrix_figure(metrics, normalised=False).data
    assert list(heatmap.x) == CLASSES and list(heatmap.y) == CLASSES
    np.testing.assert_array_equal(np.asarray(heatmap.z), [[2, 1, 0], [1, 1, 0], [0, 1, 3]])


def test_normalised_confusion_matrix_rows_sum_to_one(metrics):
    [heatmap] = confusion_matrix_figure(metrics, normalised=True).data
    z = np.asarray(heatmap.z)
    np.testing.assert_allclose(z.sum(axis=1), 1.0)
    np.testing.assert_allclose(z[2], [0, 0.25, 0.75])


def test_a_class_without_images_is_a_row_of_zeros_when_normalised():
    metrics = classification_metrics(np.array([0, 0, 1]), np.eye(3)[[0, 2, 1]], CLASSES)
    z = np.asarray(confusion_matrix_figure(metrics, normalised=True).data[0].z)
    np.testing.assert_allclose(z, [[0.5, 0, 0.5], [0, 1, 0], [0, 0, 0]])


def test_roc_has_one_curve_per_class_with_its_auc_and_the_diagonal(metrics):
    traces = roc_figure(metrics).data
    assert len(traces) == len(CLASSES) + 1
    for trace, name in zip(traces, CLASSES):
        assert trace.name == f"{name} (AUC {metrics['per_class'][name]['auc']:.3f})"
        assert list(trace.x) == metrics["roc_curves"][name]["fpr"]
        assert list(trace.y) == metrics["roc_curves"][name]["tpr"]
    assert traces[-1].name == "chance" and list(traces[-1].x) == [0, 1] and list(traces[-1].y) == [0, 1]


def test_roc_leaves_out_classes_whose_auc_is_undefined():
    metrics = classification_metrics(np.array([0, 0, 1, 1]), np.eye(3)[[0, 1, 1, 1]], CLASSES)
    names = [trace.name for trace in roc_figure(metrics).data]
    assert len(names) == 3 and not any(name.startswith("fox") for name in names)


def test_top_k_bars_are_the_top_classes_most_probable_first():
    probs = np.array([0.1, 0.6, 0.05, 0.25], dtype=np.float32)
    names = ["a", "b", "c", "d"]
    prediction = Prediction(source="x.png", top=top_classes(probs, names, 3), probabilities=probs)
    figure = top_k_figure(prediction)
    [bars] = figure.data
    assert bars.orientation == "h"
    assert list(bars.y) == ["b", "d", "a"]
    np.testing.assert_allclose(bars.x, [0.6, 0.25, 0.1], rtol=1e-6)
    assert list(bars.x) == sorted(bars.x, reverse=True)
    assert figure.layout.yaxis.autorange == "reversed"


def test_runs_overlay_draws_one_curve_per_run_with_the_metric():
    histories = {
        "run-a": pd.DataFrame({"epoch": [0, 1, 2], "val_accuracy": [0.5, 0.7, 0.8], "loss": [1.0, 0.6, 0.4]}),
        "run-b": pd.DataFrame({"epoch": [0, 1], "val_accuracy": [0.4, 0.9], "loss": [1.2, 0.5]}),
        "run-empty": pd.DataFrame(),
    }
    traces = runs_overlay_figure(histories, "val_accuracy").data
    assert [trace.name for trace in traces] == ["run-a", "run-b"]
    assert list(traces[0].x) == [1, 2, 3] and list(traces[0].y) == [0.5, 0.7, 0.8]
    assert list(runs_overlay_figure(histories, "loss").data[1].y) == [1.2, 0.5]


def test_runs_overlay_names_the_valid_metrics_for_an_unknown_one():
    history = pd.DataFrame({"epoch": [0], "val_accuracy": [0.5], "val_loss": [1.0], "lr": [1e-3]})
    with pytest.raises(ValueError, match="'f1'.*val_accuracy, val_loss, lr"):
        runs_overlay_figure({"run": history}, "f1")


def test_runs_overlay_fits_the_axis_to_close_accuracies_and_offers_every_history_column():
    histories = {"run-a": pd.DataFrame({"epoch": [0, 1], "val_accuracy": [0.95, 0.96], "lr": [1e-3, 1e-4]}),
                 "run-b": pd.DataFrame({"epoch": [0, 1], "val_accuracy": [0.955, 0.97], "lr": [2e-3, 2e-4]})}
    low, high = runs_overlay_figure(histories, "val_accuracy").layout.yaxis.range
    assert 0.9 < low < 0.95 and 0.97 < high < 1.0  # not 0..1: a point's difference is visible
    assert list(history_metrics(histories)) == ["val_accuracy", "lr"]
    assert list(runs_overlay_figure(histories, "lr").data[1].y) == [2e-3, 2e-4]


def test_class_colours_never_repeat_for_many_classes():
    for count in (3, 12, 30, 60):
        colours = class_colours(count)
        assert len(colours) == count and len(set(colours)) == count


def test_roc_draws_only_the_classes_it_is_asked_for_in_their_own_colours():
    classes = [f"c{i}" for i in range(12)]
    y_true = np.repeat(np.arange(12), 3)
    probs = np.full((36, 12), 0.01)
    probs[np.arange(36), y_true] = 0.9
    probs[0] = 0.01
    probs[0, 5] = 0.9  # one image of c0 is taken for c5: only those two classes are not separated perfectly
    metrics = classification_metrics(y_true, probs / probs.sum(axis=1, keepdims=True), classes)
    weak = informative_roc_classes(metrics)
    assert set(weak) == {"c0", "c5"}
    traces = roc_figure(metrics, weak).data
    assert [trace.name.split(" ")[0] for trace in traces] == [*weak, "chance"]
    every = roc_figure(metrics).data[:-1]
    assert len({trace.line.color for trace in every}) == 12
