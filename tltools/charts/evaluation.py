"""Evaluation figures: confusion matrix, ROC curves, top-k probabilities and several runs' curves."""

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# The history.csv columns that runs_overlay_figure can draw, with their axis titles.
HISTORY_METRICS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "loss": "training loss",
}
_MARGIN = dict(l=10, r=10, t=30, b=10)


def confusion_matrix_figure(metrics: dict, normalised: bool) -> go.Figure:
    """Return the confusion matrix as an annotated heatmap: true class on y, predicted class on x.

    Args:
        metrics: :func:`tltools.evaluation.classification_metrics` output of one split.
        normalised: Show each row as shares of the true class (rows sum to 1;
            a class without images is a row of zeros) instead of counts.
    """
    classes = list(metrics["per_class"])
    counts = np.asarray(metrics["confusion_matrix"], dtype=float)
    if normalised:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        text, colour_title = "%{z:.2f}", "share"
    else:
        values, text, colour_title = counts, "%{z:.0f}", "images"
    figure = go.Figure(go.Heatmap(
        z=values, x=classes, y=classes, colorscale="Blues", zmin=0, zmax=1 if normalised else None,
        texttemplate=text, colorbar=dict(title=colour_title),
        hovertemplate="true %{y}<br>predicted %{x}<br>" + text + "<extra></extra>",
    ))
    side = max(320, 60 + 40 * len(classes))
    figure.update_layout(
        xaxis=dict(title="predicted", type="category"),
        yaxis=dict(title="true", type="category", autorange="reversed"),
        margin=_MARGIN, height=min(side, 900),
    )
    return figure


def roc_figure(metrics: dict) -> go.Figure:
    """Return one-vs-rest ROC curves, one per class with an AUC in the legend, and the chance diagonal.

    Classes whose AUC is undefined on this split (no images of it, or only
    images of it) have no curve.

    Args:
        metrics: :func:`tltools.evaluation.classification_metrics` output of one split.
    """
    figure = go.Figure()
    for name, curve in metrics["roc_curves"].items():
        if curve is None:
            continue
        auc = metrics["per_class"][name]["auc"]
        figure.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"{name} (AUC {auc:.3f})")
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dash", color="grey"))
    figure.update_layout(
        xaxis=dict(title="false positive rate", range=[0, 1]),
        yaxis=dict(title="true positive rate", range=[0, 1.02]),
        margin=_MARGIN, height=380,
    )
    return figure


def top_k_figure(prediction) -> go.Figure:
    """Return a horizontal bar chart of one image's top-k classes, the most probable on top.

    Args:
        prediction: A :class:`tltools.prediction.Prediction`.
    """
    labels = [item["label"] for item in prediction.top]
    probs = [item["prob"] for item in prediction.top]
    figure = go.Figure(go.Bar(
        x=probs, y=labels, orientation="h", text=[f"{p:.1%}" for p in probs], textposition="auto",
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    figure.update_layout(
        xaxis=dict(title="probability", range=[0, 1], tickformat=".0%"),
        yaxis=dict(type="category", autorange="reversed"),
        margin=_MARGIN, height=60 + 32 * len(labels),
    )
    return figure


def runs_overlay_figure(histories: Mapping[str, pd.DataFrame], metric: str) -> go.Figure:
    """Return one curve per run of a ``history.csv`` metric against the epoch (counted from 1).

    Args:
        histories: Run id → its history (:func:`tltools.training.history_frame`);
            runs without the metric (e.g. before their first epoch) draw no curve.
        metric: A key of :data:`HISTORY_METRICS`.

    Raises:
        ValueError: ``metric`` is not one of :data:`HISTORY_METRICS`.
    """
    if metric not in HISTORY_METRICS:
        raise ValueError(f"metric={metric!r} is not a history metric; use one of {', '.join(HISTORY_METRICS)}")
    figure = go.Figure()
    for run_id, history in histories.items():
        if metric not in history.columns or history.empty:
            continue
        figure.add_scatter(x=history["epoch"] + 1, y=history[metric], mode="lines+markers", name=run_id)
    figure.update_layout(
        xaxis=dict(title="epoch", dtick=1 if all(len(h) <= 20 for h in histories.values()) else None),
        yaxis=dict(title=HISTORY_METRICS[metric], range=[0, 1.02] if metric.endswith("accuracy") else None),
        legend=dict(orientation="h", yanchor="top", y=-0.2),
        margin=_MARGIN, height=400,
    )
    return figure
