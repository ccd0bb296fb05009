"""Training charts name the cross-entropy and the label-smoothed objective apart."""

from tltools.charts.training import epoch_curves_figure
from tltools.cli.train_cmd import _format_logs


def _epochs(smoothing: bool) -> list[dict]:
    extra = 0.2 if smoothing else 0.0
    return [{"epoch": e, "phase": 1, "loss": 1.0 / e, "val_loss": 1.2 / e, "objective": 1.0 / e + extra,
             "val_objective": 1.2 / e + extra, "accuracy": 0.5, "val_accuracy": 0.5, "learning_rate": 1e-3,
             "seconds": 1.0} for e in (1, 2, 3)]


def test_the_loss_chart_is_the_cross_entropy_and_adds_the_objective_only_when_it_differs():
    plain = epoch_curves_figure(_epochs(smoothing=False), "loss")
    smoothed = epoch_curves_figure(_epochs(smoothing=True), "loss")

    assert [trace.name for trace in plain.data] == ["train", "validation"]
    assert list(plain.data[1].y) == [1.2 / e for e in (1, 2, 3)]
    assert "cross-entropy" in plain.layout.title.text
    names = [trace.name for trace in smoothed.data]
    assert names[:2] == ["train", "validation"] and len(names) == 4
    assert all("objective" in name for name in names[2:])
    assert list(smoothed.data[3].y) == [1.2 / e + 0.2 for e in (1, 2, 3)]


def test_the_cli_epoch_line_names_the_objective_only_when_it_differs():
    assert "objective" not in _format_logs(_epochs(smoothing=False)[0])
    line = _format_logs(_epochs(smoothing=True)[0])
    assert "loss 1.0000" in line and "val_loss 1.2000" in line and "objective 1.2000" in line


def test_the_batch_chart_plots_each_batchs_own_loss_and_says_so():
    from tltools.charts.training import batch_loss_figure

    own = batch_loss_figure([{"step": 1, "loss": 1.0, "batch_loss": 1.0}, {"step": 2, "loss": 0.75, "batch_loss": 0.5}])
    assert list(own.data[0].y) == [1.0, 0.5] and "each batch" in own.layout.title.text
    older = batch_loss_figure([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.75}])
    assert list(older.data[0].y) == [1.0, 0.75] and "running mean" in older.layout.title.text


def test_the_lr_finder_chart_labels_both_suggestions_on_opposite_sides_of_the_curve():
    import pandas as pd

    from tltools.charts.training import lr_finder_figure
    from tltools.training.lr_finder import LRFinderResult

    rates = [10.0 ** (-7 + 7 * i / 39) for i in range(40)]
    losses = [2.0 - 1.5 * i / 39 for i in range(40)]
    result = LRFinderResult(pd.DataFrame({"learning_rate": rates, "loss": losses, "smoothed_loss": losses}),
                            steepest=rates[20], valley=rates[21])  # close together: the labels must not collide
    figure = lr_finder_figure(result)
    labels = [trace for trace in figure.data if trace.mode == "markers+text"]
    assert [trace.text[0] for trace in labels] == [f"suggested (valley): {rates[21]:.1e}",
                                                   f"steepest descent: {rates[20]:.1e}"]
    assert [trace.textposition for trace in labels] == ["top left", "bottom right"]


def test_the_trials_chart_fits_its_axis_to_the_scores_and_marks_the_chosen_trial():
    from tltools.charts.training import trials_figure

    trials = [{"trial": 0, "val_accuracy": 0.90, "state": "complete", "backbone": "b", "chosen": False},
              {"trial": 1, "val_accuracy": None, "state": "pruned", "backbone": "b", "chosen": False},
              {"trial": 2, "val_accuracy": 0.95, "state": "complete", "backbone": "b", "chosen": True},
              {"trial": 3, "val_accuracy": 0.93, "state": "pruned", "backbone": "b", "chosen": False}]
    figure = trials_figure(trials)
    best = next(trace for trace in figure.data if trace.name == "best so far")
    assert list(best.y) == [0.90, 0.95, 0.95]
    chosen = next(trace for trace in figure.data if trace.name == "chosen")
    assert list(chosen.x) == [2] and "chosen: trial 2" in chosen.text[0]
    low, high = figure.layout.yaxis.range
    assert 0.8 < low < 0.9 and 0.95 < high <= 1.01  # fitted to the scores, not 0..1
