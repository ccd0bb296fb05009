"""Evaluation figures: confusion matrix, ROC curves, top-k probabilities and several runs' curves."""

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

# The history.csv columns that runs_overlay_figure can draw, with their axis titles.
HISTORY_METRICS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "loss": "training loss",
}
_MARGIN = dict(l=10, r=10, t=30, b=10)
# Qualitative palettes without repeats, smallest first: D3's 10, then Dark24, then Dark24 + Light24.
_PALETTES = (plotly.colors.qualitative.D3, plotly.colors.qualitative.Dark24,
             plotly.colors.qualitative.Dark24 + plotly.colors.qualitative.Light24)
# A class whose one-vs-rest AUC is at least this is separated (almost) perfectly: its ROC curve is the corner.
INFORMATIVE_AUC = 0.99


def class_colours(count: int) -> list[str]:
    """Return ``count`` distinct colours from a qualitative palette: no colour repeats, whatever the count.

    Up to 10 classes get D3's palette, up to 24 Dark24, up to 48 Dark24 + Light24; more get evenly
    spaced hues at two lightnesses.
    """
    for palette in _PALETTES:
        if count <= len(palette):
            return list(palette[:count])
    return [f"hsl({round(360 * i / count)}, 70%, {40 if i % 2 else 55}%)" for i in range(count)]


def informative_roc_classes(metrics: dict, threshold: float = INFORMATIVE_AUC) -> list[str]:
    """Return the classes whose ROC curve tells something: a defined AUC below ``threshold``, worst first."""
    aucs = {name: row.get("auc") for name, row in metrics["per_class"].items()}
    weak = [name for name, auc in aucs.items() if auc is not None and np.isfinite(auc) and auc < threshold
            and (metrics.get("roc_curves") or {}).get(name) is not None]
    return sorted(weak, key=lambda name: aucs[name])


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
        texttemplate=text, textfont=dict(size=14), showscale=False,  # every cell is labelled; no colour bar needed
        hovertemplate="true %{y}<br>predicted %{x}<br>" + text + "<extra></extra>",
    ))
    side = max(320, 120 + 36 * len(classes))
    figure.update_layout(
        xaxis=dict(title=f"predicted ({colour_title})", type="category", tickangle=-45, automargin=True),
        yaxis=dict(title="true", type="category", autorange="reversed", automargin=True),
        margin=_MARGIN, height=min(side, 900),
    )
    return figure


def roc_figure(metrics: dict, classes: list[str] | None = None) -> go.Figure:
    """Return one-vs-rest ROC curves, one per class with an AUC in the legend, and the chance diagonal.

    Each class keeps its colour from :func:`class_colours` (by its position among all classes), so
    no two curves share one. Classes whose AUC is undefined on this split (no images of it, or only
    images of it) have no curve.

    Args:
        metrics: :func:`tltools.evaluation.classification_metrics` output of one split.
        classes: The classes to draw (e.g. :func:`informative_roc_classes`); None for all.
    """
    names = list(metrics["per_class"])
    colours = dict(zip(names, class_colours(len(names))))
    figure = go.Figure()
    for name in names if classes is None else classes:
        curve = metrics["roc_curves"].get(name)
        if curve is None:
            continue
        auc = metrics["per_class"][name]["auc"]
        figure.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"{name} (AUC {auc:.3f})",
                           line=dict(color=colours[name]))
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dash", color="grey"))
    figure.update_layout(
        xaxis=dict(title="false positive rate", range=[0, 1]),
        yaxis=dict(title="true positive rate", range=[0, 1.02]),
        legend=dict(orientation="h", yanchor="top", y=-0.2),
        margin=_MARGIN, height=420,
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


def history_metrics(histories: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """Return every per-epoch metric the histories hold (numeric columns but the epoch) with its axis title.

    The usual ones (:data:`HISTORY_METRICS`) come first, in that order; others (learning rate, seconds,
    objective, …) follow under their column names.
    """
    found = []
    for history in histories.values():
        for column in history.columns:
            if column != "epoch" and column not in found and pd.api.types.is_numeric_dtype(history[column]):
                found.append(column)
    known = {key: title for key, title in HISTORY_METRICS.items() if key in found}
    return {**known, **{column: column.replace("_", " ") for column in found if column not in known}}


def fitted_range(values, *, pad: float = 0.08, ceiling: float | None = None) -> list[float] | None:
    """Return a y-axis range around ``values`` with a margin, so small differences between runs show.

    Args:
        values: The numbers drawn (NaNs ignored).
        pad: The margin on each side, as a share of the data's span (of the value itself when all are equal).
        ceiling: A bound the axis need not pass (1 for accuracies); None for none.

    Returns:
        ``[low, high]``, or None when there is nothing to draw.
    """
    data = np.asarray([value for value in values if value is not None and np.isfinite(value)], dtype=float)
    if data.size == 0:
        return None
    low, high = float(data.min()), float(data.max())
    margin = (high - low) * pad if high > low else max(abs(high) * pad, 0.01)
    low, high = low - margin, high + margin
    if ceiling is not None and high > ceiling and float(data.max()) <= ceiling:
        high = ceiling + margin / 4
    return [low, high]


def runs_overlay_figure(histories: Mapping[str, pd.DataFrame], metric: str) -> go.Figure:
    """Return one curve per run of a ``history.csv`` metric against the epoch (counted from 1).

    The y axis is fitted to the drawn values (not a fixed 0..1), so runs a point apart are told apart.

    Args:
        histories: Run id → its history (:func:`tltools.training.history_frame`);
            runs without the metric (e.g. before their first epoch) draw no curve.
        metric: A column of the histories (see :func:`history_metrics`).

    Raises:
        ValueError: No history has ``metric`` (and at least one history has epochs).
    """
    titles = history_metrics(histories)
    if metric not in titles and any(not history.empty for history in histories.values()):
        raise ValueError(f"metric={metric!r} is not in these runs' histories; use one of {', '.join(titles)}")
    figure = go.Figure()
    drawn = []
    for run_id, history in histories.items():
        if metric not in history.columns or history.empty:
            continue
        figure.add_scatter(x=history["epoch"] + 1, y=history[metric], mode="lines+markers", name=run_id)
        drawn.extend(history[metric].tolist())
    figure.update_layout(
        xaxis=dict(title="epoch", dtick=1 if all(len(h) <= 20 for h in histories.values()) else None),
        yaxis=dict(title=titles.get(metric, HISTORY_METRICS.get(metric, metric)),
                   range=fitted_range(drawn, ceiling=1.0 if metric.endswith("accuracy") else None),
                   tickformat=".1%" if metric.endswith("accuracy") else None),
        legend=dict(orientation="h", yanchor="top", y=-0.2),
        margin=_MARGIN, height=400,
    )
    return figure
