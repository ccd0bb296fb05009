"""Training figures: live loss/accuracy curves, per-batch loss, and the learning-rate finder."""

import plotly.graph_objects as go

from tltools.training.callbacks.named_logs import objective_differs
from tltools.training.lr_finder import LRFinderResult

_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.25))


def epoch_curves_figure(epochs: list[dict], metric: str) -> go.Figure:
    """Return train and validation ``metric`` per epoch, with the fine-tuning phase shaded.

    For ``"loss"`` the curves are the unsmoothed cross-entropy; when the records also hold the
    ``objective`` the optimizer minimised and it differs (label smoothing, class weights), it is
    drawn dashed under its own name.

    Args:
        epochs: Epoch records from :meth:`tltools.training.TrainingLog.snapshot` (or a history table's rows).
        metric: ``"loss"`` or ``"accuracy"``.
    """
    figure = go.Figure()
    x = [epoch["epoch"] for epoch in epochs]
    traces = [(metric, "train", "solid"), (f"val_{metric}", "validation", "solid")]
    if metric == "loss" and any(objective_differs(epoch) for epoch in epochs):
        traces += [("objective", "train objective (label-smoothed / weighted)", "dash"),
                   ("val_objective", "validation objective (label-smoothed)", "dash")]
    for key, name, dash in traces:
        figure.add_scatter(x=x, y=[epoch.get(key) for epoch in epochs], mode="lines+markers", name=name,
                           line=dict(dash=dash))
    fine_tuning = [epoch["epoch"] for epoch in epochs if epoch.get("phase") == 2]
    if fine_tuning:
        figure.add_vrect(x0=min(fine_tuning) - 0.5, x1=max(fine_tuning) + 0.5, fillcolor="orange", opacity=0.12,
                         line_width=0, annotation_text="fine-tuning", annotation_position="top left")
    title = "Loss (cross-entropy)" if metric == "loss" else metric.capitalize()
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, **_LAYOUT)
    if metric == "accuracy":
        figure.update_yaxes(range=[0, 1.02])
    return figure


def batch_loss_figure(batches: list[dict]) -> go.Figure:
    """Return the training cross-entropy after every recorded batch (Keras' running mean within each epoch)."""
    figure = go.Figure()
    figure.add_scatter(x=[batch["step"] for batch in batches], y=[batch.get("loss") for batch in batches],
                       mode="lines", name="loss")
    figure.update_layout(title="Loss (cross-entropy) per batch", xaxis_title="step", yaxis_title="loss",
                         showlegend=False, **_LAYOUT)
    return figure


def lr_finder_figure(result: LRFinderResult) -> go.Figure:
    """Return loss against learning rate (log x axis) with the suggested rates marked."""
    curve = result.curve
    figure = go.Figure()
    figure.add_scatter(x=curve["learning_rate"], y=curve["loss"], mode="markers", name="loss", opacity=0.35)
    figure.add_scatter(x=curve["learning_rate"], y=curve["smoothed_loss"], mode="lines", name="smoothed loss")
    for rate, label in ((result.valley, "valley (suggested)"), (result.steepest, "steepest")):
        figure.add_vline(x=rate, line_dash="dash", annotation_text=f"{label}: {rate:.1e}")
    figure.update_xaxes(type="log", title="learning rate")
    figure.update_layout(title="Learning-rate finder", yaxis_title="loss", **_LAYOUT)
    return figure
