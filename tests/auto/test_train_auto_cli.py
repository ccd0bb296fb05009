"""``python -m tltools train DATA --auto --time-budget SECONDS`` from the command line."""

import json
from pathlib import Path

import pytest

from tltools.cli import main


@pytest.mark.slow
def test_train_auto_prints_the_leaderboard_the_choice_and_why_and_writes_an_ordinary_run(colours_dir, capsys):
    status = main(["train", str(colours_dir), "--auto", "--time-budget", "40", "--image-size", "64",
                   "--batch-size", "8", "--val-split", "0.3", "--seed", "0", "--epochs", "10", "--patience", "5"])
    assert status == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("auto: ") and "trials in" in lines[0] and "40 s budget" in lines[0]
    assert any(line.endswith("<- chosen") for line in lines)
    # which offline backbone wins depends on how many fit the budget on this machine's load
    assert any(line.startswith("chosen: efficientnet_lite") for line in lines)
    assert any(line.startswith("why: ") for line in lines) and any(line.startswith("fine-tuning: ") for line in lines)
    run = next(line for line in lines if line.startswith("run: ")).removeprefix("run: ")
    summary = json.loads((Path(run) / "auto.json").read_text())
    assert summary["time_budget_s"] == 40 and summary["trials"] >= 1
    assert "val: accuracy" in out


@pytest.mark.parametrize("options, message", [
    (["--time-budget", "60"], "--time-budget 60 needs --auto"),
    (["--auto", "--out", "somewhere"], "--auto writes its own run folders"),
])
def test_auto_options_that_do_not_go_together_are_one_error_line(colours_dir, capsys, options, message):
    assert main(["train", str(colours_dir), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_a_time_budget_that_is_not_a_positive_number_is_refused(colours_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(colours_dir), "--auto", "--time-budget", "-5"])
    assert exit_info.value.code == 2
    assert "not a positive number of seconds" in capsys.readouterr().err
