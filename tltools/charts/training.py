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
    """Return each recorded batch's own training cross-entropy (``batch_loss``), with epoch boundaries marked.

    Records without ``batch_loss`` (older logs) fall back to ``loss``, Keras' running mean within the epoch,
    and the title then says so.
    """
    figure = go.Figure()
    own = all("batch_loss" in batch for batch in batches)
    figure.add_scatter(x=[batch["step"] for batch in batches],
                       y=[batch.get("batch_loss" if own else "loss") for batch in batches],
                       mode="lines", name="loss", line=dict(width=1))
    title = "Loss (cross-entropy) of each batch" if own else "Loss (cross-entropy), running mean within each epoch"
    figure.update_layout(title=title, xaxis_title="step", yaxis_title="loss", showlegend=False, **_LAYOUT)
    return figure


def lr_finder_figure(result: LRFinderResult) -> go.Figure:
    """Return loss against learning rate (log x axis): the points, the centred smoothing and both suggestions.

    The two suggestions are marked on the smoothed curve, each labelled on its own side (the valley
    above and left of its point, the steepest descent below and right of its own), so the labels never overlap.
    """
    curve = result.curve
    figure = go.Figure()
    figure.add_scatter(x=curve["learning_rate"], y=curve["loss"], mode="markers", name="loss of each step",
                       opacity=0.35)
    figure.add_scatter(x=curve["learning_rate"], y=curve["smoothed_loss"], mode="lines",
                       name="smoothed (centred)")
    marks = ((result.valley, "suggested (valley)", "top left", "#2e7d32"),
             (result.steepest, "steepest descent", "bottom right", "#616161"))
    for rate, label, position, colour in marks:
        at = (curve["learning_rate"] - rate).abs().idxmin()
        figure.add_vline(x=rate, line_dash="dash", line_color=colour, opacity=0.6)
        figure.add_scatter(x=[rate], y=[curve["smoothed_loss"][at]], mode="markers+text", name=label,
                           text=[f"{label}: {rate:.1e}"], textposition=position, showlegend=False,
                           marker=dict(size=10, color=colour), textfont=dict(color=colour))
    low, high = curve["loss"].min(), curve["loss"].max()
    pad = 0.12 * (high - low or 1.0)
    figure.update_yaxes(range=[low - pad, high + pad])
    figure.update_xaxes(type="log", title="learning rate")
    figure.update_layout(title="Learning-rate finder", yaxis_title="loss", **_LAYOUT)
    return figure


def trials_figure(trials: list[dict]) -> go.Figure:
    """Return each auto-mode trial's validation accuracy against its number, the best so far, and the chosen one.

    Args:
        trials: ``trials.csv`` rows (from :meth:`tltools.training.TrainingLog.snapshot`'s ``trials`` or
            :func:`tltools.auto.read_trials`): ``trial``, ``val_accuracy`` (None when pruned before scoring),
            ``state``, ``backbone``, ``chosen``.
    """
    figure = go.Figure()
    scored = [trial for trial in trials if trial.get("val_accuracy") is not None
              and trial["val_accuracy"] == trial["val_accuracy"]]  # NaN from a CSV is unscored too
    for state, symbol in (("complete", "circle"), ("pruned", "x"), ("stopped", "square")):
        group = [trial for trial in scored if trial.get("state") == state]
        if group:
            figure.add_scatter(x=[trial["trial"] for trial in group], y=[trial["val_accuracy"] for trial in group],
                               mode="markers", name=state, marker=dict(symbol=symbol, size=8),
                               text=[trial.get("backbone") for trial in group])
    best, running = [], None
    for trial in sorted(scored, key=lambda trial: trial["trial"]):
        running = trial["val_accuracy"] if running is None else max(running, trial["val_accuracy"])
        best.append((trial["trial"], running))
    if best:
        figure.add_scatter(x=[x for x, _ in best], y=[y for _, y in best], mode="lines", name="best so far",
                           line=dict(shape="hv", dash="dot"))
    chosen = [trial for trial in scored if trial.get("chosen") in (True, "True", 1)]
    for trial in chosen:
        figure.add_scatter(x=[trial["trial"]], y=[trial["val_accuracy"]], mode="markers+text", name="chosen",
                           text=[f"chosen: trial {trial['trial']}"], textposition="bottom center",
                           marker=dict(symbol="star", size=16, color="#2e7d32"), showlegend=False)
    if scored:
        values = [trial["val_accuracy"] for trial in scored]
        low, high = min(values), max(values)
        pad = max(0.01, 0.1 * (high - low))
        figure.update_yaxes(range=[max(low - pad, 0.0), min(high + pad, 1.0) + 0.005])
    figure.update_layout(title="Validation accuracy of each trial", xaxis_title="trial",
                         yaxis_title="validation accuracy", **_LAYOUT)
    return figure
