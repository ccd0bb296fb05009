"""The hints a run's numbers give (``tltools.training.advice``), on synthetic histories and metrics."""

import numpy as np
import pandas as pd

from tltools.training import TrainConfig
from tltools.training.advice import hints, hints_from


def _history(val_loss, *, accuracy=0.95, val_accuracy=0.93) -> pd.DataFrame:
    count = len(val_loss)
    return pd.DataFrame({"epoch": range(count), "accuracy": np.full(count, accuracy), "loss": np.full(count, 0.2),
                         "val_accuracy": np.full(count, val_accuracy), "val_loss": val_loss})


def _metrics(val_accuracy=0.95, **extra):
    return {"val": {"accuracy": val_accuracy}, "stopped_by_user": False, **extra}


def _kinds(found):
    return [hint.kind for hint in found]


def test_a_converged_balanced_run_gets_no_hint():
    converged = _history([1.0, 0.5, 0.3, 0.25, 0.24, 0.245, 0.25, 0.26, 0.27])
    assert hints_from(converged, TrainConfig(), _metrics(), {"a": 40, "b": 35}) == []


def test_still_falling_at_the_end_says_raise_epochs():
    falling = _history(list(np.linspace(1.0, 0.3, 12)))
    found = hints_from(falling, TrainConfig(epochs=12), _metrics())
    assert _kinds(found) == ["train-longer"]
    assert found[0].setting == "epochs" and found[0].value == 24
    assert "raise epochs" in found[0].text and "--epochs" in found[0].text


def test_still_falling_in_fine_tuning_names_fine_tune_epochs():
    falling = _history(list(np.linspace(1.0, 0.3, 12)))
    found = hints_from(falling, TrainConfig(epochs=6, fine_tune_epochs=6), _metrics())
    assert found[0].setting == "fine_tune_epochs"


def test_a_flat_tail_is_not_still_improving():
    flat = _history([1.0, 0.5, 0.3, 0.3, 0.2999, 0.2998, 0.2997, 0.2996])  # lowest last, by less than 2 %
    assert "train-longer" not in _kinds(hints_from(flat, TrainConfig(), _metrics()))


def test_a_large_gap_suggests_augmentation_then_dropout_then_fewer_unfrozen_layers():
    gap = _history([1.0, 0.6, 0.5, 0.55, 0.6], accuracy=0.99, val_accuracy=0.80)
    plain = hints_from(gap, TrainConfig(), _metrics(0.95))
    assert plain[0].kind == "overfitting" and plain[0].setting == "augment" and "--augment" in plain[0].text
    augmented = hints_from(gap, TrainConfig(augment={"flip": "horizontal"}), _metrics(0.95))
    assert augmented[0].setting == "dropout" and augmented[0].value == 0.4
    all_unfrozen = hints_from(gap, TrainConfig(fine_tune_epochs=5, unfreeze="all"), _metrics(0.95))
    assert all_unfrozen[0].setting == "unfreeze" and all_unfrozen[0].value == "top-blocks:2"


def test_low_validation_without_fine_tuning_suggests_fine_tuning_or_auto():
    converged = _history([1.0, 0.8, 0.7, 0.75, 0.8], accuracy=0.85, val_accuracy=0.78)
    found = hints_from(converged, TrainConfig(), _metrics(0.78))
    assert _kinds(found) == ["fine-tune"]
    assert found[0].setting == "fine_tune_epochs" and "--auto" in found[0].text
    timid = hints_from(converged, TrainConfig(fine_tune_epochs=5), _metrics(0.78))  # at a tenth of 1e-3
    assert _kinds(timid) == ["fine-tune rate"] and timid[0].setting == "fine_tune_learning_rate"
    assert "--fine-tune-lr 0.0003" in timid[0].text
    assert hints_from(converged, TrainConfig(fine_tune_epochs=5, fine_tune_learning_rate=3e-4), _metrics(0.78)) == []


def test_a_head_that_cannot_fit_the_training_images_suggests_a_hidden_layer():
    stuck = _history([2.0, 1.8, 1.7, 1.75, 1.8], accuracy=0.5, val_accuracy=0.48)
    found = hints_from(stuck, TrainConfig(), _metrics(0.48))
    assert "underfitting" in _kinds(found)
    assert next(hint for hint in found if hint.kind == "underfitting").setting == "dense_units"


def test_severe_imbalance_with_class_weights_off_suggests_balanced():
    converged = _history([1.0, 0.5, 0.3, 0.35, 0.4])
    found = hints_from(converged, TrainConfig(), _metrics(), {"big": 90, "small": 10})
    assert _kinds(found) == ["imbalance"]
    assert found[0].setting == "class_weights" and found[0].value == "balanced" and "'small'" in found[0].text
    assert hints_from(converged, TrainConfig(class_weights="balanced"), _metrics(), {"big": 90, "small": 10}) == []
    assert hints_from(converged, TrainConfig(), _metrics(), {"big": 20, "small": 10}) == []


def test_hints_read_a_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TrainConfig(epochs=12).to_json())
    (run / "metrics.json").write_text('{"val": {"accuracy": 0.7}, "stopped_by_user": false}')
    (run / "status.json").write_text('{"status": "completed", "created_at": "2026-12-01T02:46:48"}')
    (run / "labels.txt").write_text("a\nb\n")
    _history(list(np.linspace(1.0, 0.3, 12)), accuracy=0.8, val_accuracy=0.7).to_csv(run / "history.csv",
                                                                                       index=False)
    pd.DataFrame({"relpath": ["a/1.png"] * 30 + ["b/1.png"] * 3, "label": ["a"] * 30 + ["b"] * 3,
                  "split": ["train"] * 33, "sha1": ["0"] * 33}).to_csv(run / "splits.csv", index=False)
    assert _kinds(hints(run)) == ["train-longer", "fine-tune", "imbalance"]
