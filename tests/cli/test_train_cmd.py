"""``python -m tltools train`` and ``runs`` from the command line."""

import json

from tltools.cli import main


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


def test_a_config_file_is_read_and_options_override_it(colours_dir, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image_size": 64, "epochs": 5, "batch_size": 8, "val_fraction": 0.3}))
    out = tmp_path / "run"
    assert main(["train", str(colours_dir), "--config", str(config), "--epochs", "1", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["epochs"], saved["image_size"]) == (1, 64)
    assert "val: accuracy" in capsys.readouterr().out


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
    assert len(err) == 1 and err[0].startswith("error: unknown backbone 'resnet9000'")
