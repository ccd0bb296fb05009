"""``python -m tltools train`` and ``runs`` from the command line."""

import dataclasses
import json

import pytest

from tltools.cli import build_parser, main
from tltools.cli.train_cmd import config_from_args
from tltools.data.augment import AugmentOptions
from tltools.training import TrainConfig


@pytest.mark.slow
def test_train_writes_a_run_and_prints_the_promised_metrics(colours_dir, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", str(colours_dir), "--image-size", "64", "--epochs", "2", "--batch-size", "8",
                   "--val-split", "0.3", "--seed", "0", "--out", str(out), "--json"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run"] == str(out)
    assert printed["classes"] == ["blue", "green", "red"]
    assert {"accuracy", "macro_f1", "loss", "per_class", "confusion_matrix"} <= set(printed["val"])
    assert printed["test"] is None and printed["epochs_run"] == 2 and printed["train_seconds"] > 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["image_size"], saved["epochs"], saved["batch_size"]) == (64, 2, 8)


@pytest.mark.slow
def test_a_config_file_is_read_and_options_override_it(colours_dir, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image_size": 64, "epochs": 5, "batch_size": 8, "val_fraction": 0.3}))
    out = tmp_path / "run"
    assert main(["train", str(colours_dir), "--config", str(config), "--epochs", "1", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["epochs"], saved["image_size"]) == (1, 64)
    assert "val: accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_runs_lists_a_new_run_with_its_status_and_accuracy(colours_dir, capsys):
    main(["train", str(colours_dir), "--image-size", "64", "--epochs", "1", "--val-split", "0.3", "--json"])
    trained = json.loads(capsys.readouterr().out)
    assert main(["runs", "--json"]) == 0
    listed = {row["path"]: row for row in json.loads(capsys.readouterr().out)}
    row = listed[trained["run"]]
    assert (row["status"], row["backbone"], row["classes"]) == ("completed", "efficientnet_lite0", 3)
    assert row["val_accuracy"] == trained["val"]["accuracy"]


def test_bad_input_exits_2_with_one_error_line(colours_dir, capsys):
    assert main(["train", str(colours_dir), "--backbone", "resnet9000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: backbone='resnet9000': unknown backbone; use one of ")


@pytest.mark.parametrize("command", ["train", "lr-find"])
def test_help_lists_an_option_for_every_config_field_with_its_default(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    listed = capsys.readouterr().out
    for name, field in TrainConfig.model_fields.items():
        assert f"--{name.replace('_', '-')}" in listed, name
    for part in dataclasses.fields(AugmentOptions):
        assert f"--augment-{part.name}" in listed, part.name
    assert "(default 0.2; a number from 0 to 0.95)" in " ".join(listed.split())  # dropout: from its field


def test_every_option_reaches_its_config_field_and_short_aliases_still_work(tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(TrainConfig(epochs=7, momentum=0.5, augment=AugmentOptions(zoom=0.3)).to_json())
    args = build_parser().parse_args([
        "train", "data", "--config", str(config_file), "--lr", "0.01", "--patience", "0", "--val-split", "0.3",
        "--fine-tune-lr", "1e-5", "--weight-decay", "0.01", "--tensorboard", "--reduce-lr-patience", "2",
        "--top-k", "3", "--augment-rotation", "0.2", "--augment-flip", "vertical", "--unfreeze", "block:6",
    ])
    config = config_from_args(args)
    assert (config.learning_rate, config.early_stopping_patience, config.val_fraction) == (0.01, 0, 0.3)
    assert (config.fine_tune_learning_rate, config.weight_decay, config.tensorboard) == (1e-5, 0.01, True)
    assert (config.reduce_lr_patience, config.top_k, config.unfreeze) == (2, 3, "block:6")
    assert (config.epochs, config.momentum) == (7, 0.5)  # from the file, not overridden
    assert config.augment == AugmentOptions(flip="vertical", rotation=0.2, zoom=0.3)  # file's zoom kept


@pytest.mark.parametrize(
    ("options", "start"),
    [
        (["--unfreeze", "block:99"], "error: unfreeze='block:99': efficientnet_lite0 has no block 99; use block:N"),
        (["--unfreeze", "500"], "error: unfreeze='500': efficientnet_lite0 has 98 base layers with weights"),
        (["--weights", "missing.h5"], "error: weights='missing.h5': is neither imagenet, none"),
        (["--augment-zoom", "2"], "error: augment.zoom=2.0 is not allowed; use a number from 0 to 1"),
        (["--val-split", "0.5", "--test-split", "0.4"], "error: val_fraction + test_fraction = 0.90"),
        (["--optimizer", "sgd", "--momentum", "1.5"], "error: momentum=1.5 is not allowed; use a number from 0 to"),
    ],
)
def test_bad_settings_are_refused_before_any_image_is_read(colours_dir, monkeypatch, capsys, options, start):
    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was read before the settings were checked")

    monkeypatch.setattr("tltools.data.dataset.check_images", no_decoding)
    assert main(["train", str(colours_dir), "--epochs", "1", *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(start), err
