"""The command-line entry point: every subcommand is reachable and errors are one line with exit status 2."""

import pytest

import tltools.cli

EXPECTED = ("inspect", "backbones", "predict", "train", "evaluate", "export", "lr-find", "runs", "clean")


def test_every_subcommand_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit) as leaving:
        tltools.cli.main(["--help"])
    assert leaving.value.code == 0
    listed = capsys.readouterr().out
    for command in EXPECTED:
        assert f"    {command} " in listed or f"    {command}\n" in listed, command


def test_a_missing_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as leaving:
        tltools.cli.main([])
    assert leaving.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
