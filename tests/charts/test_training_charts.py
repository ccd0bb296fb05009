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
