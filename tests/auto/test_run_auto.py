"""``run_auto`` end to end on tiny generated images with the offline default backbone at 64 px."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from tests.factories import colour_images, write_tree
from tltools.auto import AUTO_FILE, TRIALS_FILE, SearchSpace, candidates, run_auto
from tltools.data import load_dataset
from tltools.training import StopRequest, TrainConfig, train
from tltools.training.feature_cache import image_table

pytestmark = pytest.mark.slow

# Three nearly equal tints under heavy noise: the default head (10 epochs) does not finish learning them.
HARD = {"a": (128, 118, 118), "b": (118, 128, 118), "c": (118, 118, 128)}


def _config(**overrides):
    # A short default schedule (the plain default is up to 200 epochs) keeps trial 0 and the final run quick.
    settings = dict(image_size=64, batch_size=8, val_fraction=0.3, seed=0, epochs=10, early_stopping_patience=5)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_the_budget_is_respected_and_every_trial_is_recorded_in_the_run_folder(colours, tmp_path):
    budget = 40.0
    seen = []
    started = time.monotonic()
    auto = run_auto(colours, time_budget_s=budget, base_config=_config(), backbones=["efficientnet_lite0"],
                    on_trial=seen.append, runs_root=tmp_path)
    wall = time.monotonic() - started

    assert wall <= budget * 1.1 + 2, f"auto run took {wall:.1f} s for a {budget:.0f} s budget"
    assert len(auto.trials) >= 2 and seen == auto.trials
    run = auto.run.path
    assert (run / "model.keras").is_file() and auto.run.status in ("completed", "stopped")
    trials = pd.read_csv(run / TRIALS_FILE)
    assert list(trials["trial"]) == list(range(len(auto.trials)))
    assert set(trials["state"]) <= {"complete", "pruned", "stopped"}
    assert trials["chosen"].sum() == 1 and int(trials.loc[trials["chosen"], "trial"].iloc[0]) == auto.chosen.number
    summary = json.loads((run / AUTO_FILE).read_text())
    assert summary["chosen_trial"] == auto.chosen.number and summary["why"] == auto.why
    assert summary["seconds"] <= budget * 1.1
    assert summary["fine_tuning"]  # tried or not, it says which and why
    assert ("improved" in summary["fine_tuning"]) == bool(auto.config.fine_tune_epochs)
    assert json.loads((run / "config.json").read_text())["learning_rate"] == pytest.approx(
        auto.chosen.params["learning_rate"])


class _TestRowsGuard:
    """A feature array that fails the test when any test-split row is read."""

    def __init__(self, array, forbidden):
        self.array, self.forbidden = array, set(int(row) for row in forbidden)
        self.shape, self.dtype = array.shape, array.dtype
        self.reads = 0

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        wanted = set(np.atleast_1d(np.arange(len(self.array))[rows]).tolist())
        assert not wanted & self.forbidden, f"the search read test rows {sorted(wanted & self.forbidden)}"
        self.reads += 1
        return self.array[rows]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the search read the whole feature array, test rows included")


def test_the_test_split_is_never_read_for_a_choice(colours_dir, tmp_path, monkeypatch):
    config = _config(test_fraction=0.2)
    dataset = load_dataset(colours_dir, val_fraction=0.3, test_fraction=0.2, seed=0)
    split = dataset.with_splits(val_fraction=0.3, test_fraction=0.2, seed=0)
    table = image_table(split)
    test_rows = table.loc[table["split"] == "test", "row"]
    assert len(test_rows) == 6
    guards = []
    real = candidates.load_features

    def guarded(key, **kwargs):
        found = real(key, **kwargs)
        if found is not None:
            guards.append(_TestRowsGuard(np.asarray(found), test_rows))
            return guards[-1]
        return None

    monkeypatch.setattr(candidates, "load_features", guarded)
    auto = run_auto(dataset, time_budget_s=60, base_config=config, backbones=["efficientnet_lite0"], max_trials=3,
                    fine_tune=False,
                    runs_root=tmp_path)

    assert guards and all(guard.reads for guard in guards)
    assert len(auto.trials) == 3
    assert auto.result.metrics["test"] is not None  # the final run still evaluates the test split, at the end


def test_auto_is_not_worse_on_validation_than_the_plain_default_even_when_every_searched_head_is_bad(tmp_path):
    root = write_tree(tmp_path / "hard", colour_images(HARD, 14, seed=1))
    dataset = load_dataset(root, val_fraction=0.3, seed=0)
    config = _config()
    # Plain SGD at learning rates around 1e-6 learns nothing: only the default's own head (trial 0) is any good.
    hopeless = SearchSpace(learning_rate=(1e-7, 2e-6), optimizers=("sgd",), dense_units=(0,), class_weights=("off",))

    default = train(config, dataset, runs_root=tmp_path / "runs")
    # max_trials ends the search, not the budget: the outcome is the same on a busy machine.
    auto = run_auto(dataset, time_budget_s=600, base_config=config, backbones=["efficientnet_lite0"], max_trials=2,
                    fine_tune=False, space=hopeless, runs_root=tmp_path / "runs")

    assert auto.result.metrics["val"]["accuracy"] >= default.metrics["val"]["accuracy"]
    assert [record.params["optimizer"] for record in auto.trials] == ["adam", "sgd"]
    assert auto.chosen.number == 0


def test_a_stop_request_ends_the_search_and_still_leaves_an_ordinary_run(colours, tmp_path):
    stop = StopRequest()
    stop.stop()  # asked for before the search starts: the default's trial runs (it is the floor), nothing more
    auto = run_auto(colours, time_budget_s=600, base_config=_config(), backbones=["efficientnet_lite0"],
                    stop=stop, runs_root=tmp_path)

    assert [record.number for record in auto.trials] == [0]
    assert auto.run.status in ("completed", "stopped") and (auto.run.path / "model.keras").is_file()
    assert auto.summary["fine_tuning"].startswith("not tried")
    assert auto.config.fine_tune_epochs == 0


def test_the_search_ends_when_it_plateaus_and_says_so(tmp_path, monkeypatch):
    import tltools.auto as auto_module

    monkeypatch.setattr(auto_module, "PLATEAU_TRIALS", 3)
    monkeypatch.setattr(auto_module, "MIN_TRIALS", 4)
    root = write_tree(tmp_path / "hard", colour_images(HARD, 14, seed=1))
    dataset = load_dataset(root, val_fraction=0.3, seed=0)
    # Every searched head learns nothing: the default's trial stays the best, so the search plateaus at once.
    hopeless = SearchSpace(learning_rate=(1e-7, 2e-6), optimizers=("sgd",), dense_units=(0,), class_weights=("off",))
    auto = run_auto(dataset, time_budget_s=600, base_config=_config(), backbones=["efficientnet_lite0"],
                    max_trials=50, fine_tune=False, space=hopeless, runs_root=tmp_path / "runs")

    assert len(auto.trials) == 4 and auto.chosen.number == 0
    assert auto.summary["search_ended"].startswith("it plateaued: no better trial in the last 3 trials")


def test_a_short_budget_extracts_only_the_default_backbone_and_caps_the_folds(colours, tmp_path):
    auto = run_auto(colours, time_budget_s=60, base_config=_config(),
                    backbones=["efficientnet_lite1", "efficientnet_lite0"], max_trials=2, fine_tune=False,
                    runs_root=tmp_path)

    assert [item["backbone"] for item in auto.summary["backbones"]] == ["efficientnet_lite0"]
    assert [(item.backbone, "short" in item.reason) for item in auto.skipped] == [("efficientnet_lite1", True)]
    assert auto.summary["validation"] == "3-fold on train+val"  # 9 validation images: k-fold, capped at 3


def test_fine_tuning_is_tried_gradually_within_the_budget_and_kept_only_if_it_improves(colours, tmp_path):
    budget = 150.0
    started = time.monotonic()
    auto = run_auto(colours, time_budget_s=budget, base_config=_config(), backbones=["efficientnet_lite0"],
                    max_trials=2, runs_root=tmp_path)
    wall = time.monotonic() - started

    assert wall <= budget * 1.1, f"auto run took {wall:.1f} s for a {budget:.0f} s budget"
    note = auto.summary["fine_tuning"]
    assert "all at once " in note, note  # the first schedule is always tried when fine-tuning fits
    kept = "improved" in note
    assert bool(auto.config.fine_tune_epochs) == kept
    # "fine-tuning from block N <schedule> improved ...": the kept schedule is the one the config says
    assert auto.config.gradual_unfreeze == (kept and note.split(" improved")[0].split(" from block ")[1]
                                            .split(" ", 1)[1].startswith("gradually"))
    # The kept run is the best on validation of the head run and every fine-tuned run (accuracy, then the
    # lower cross-entropy, as the search ranks trials); the head run stays unless one beats it.
    scores = {path.parent.name: json.loads(path.read_text())["val"] for path in tmp_path.glob("*/metrics.json")}
    assert len(scores) >= 2, scores  # the head run and at least one fine-tuned run
    ranked = sorted(scores, key=lambda name: (scores[name]["accuracy"], -scores[name]["loss"]))
    assert auto.result.run.path.name == ranked[-1], (note, scores)
