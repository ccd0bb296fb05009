"""The Train page: settings go into the session's config, Start runs a background job, charts follow it."""

import math
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import fast_config
from tltools import app_state
from tltools.training import TrainConfig

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def train_page(dataset=None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    if dataset is not None:
        app.session_state[app_state.DATASET] = dataset
        config = app.session_state[app_state.CONFIG]
        config.image_size, config.batch_size, config.val_fraction, config.seed = 64, 8, 0.3, 0
    app.switch_page("pages/train.py").run()
    assert not app.exception, app.exception
    return app


def test_without_a_dataset_the_page_points_to_the_dataset_page():
    app = train_page()
    assert "Load a dataset first." in [info.value for info in app.info]


def test_sliders_set_the_sessions_training_config(colours):
    app = train_page(colours)
    app.select_slider(key="train_lr").set_value(1e-2).run()
    app.number_input(key="train_epochs").set_value(3).run()
    config = app.session_state[app_state.CONFIG]
    assert (config.learning_rate, config.epochs, config.fine_tune_epochs) == (1e-2, 3, 0)
    assert config.fine_tune_learning_rate is None


def test_widgets_take_their_range_and_help_from_the_config_fields(colours):
    app = train_page(colours)
    for widget, name in ((app.number_input(key="train_epochs"), "epochs"),
                         (app.number_input(key="train_ft_epochs"), "fine_tune_epochs"),
                         (app.number_input(key="train_patience"), "early_stopping_patience"),
                         (app.slider(key="train_smoothing"), "label_smoothing"),
                         (app.number_input(key="train_workers"), "workers")):
        assert (widget.min, widget.max) == TrainConfig.bounds(name), name
        assert widget.help == TrainConfig.help(name) != "", name


def test_the_workers_setting_is_offered_when_ray_is_installed_and_sets_the_config(colours, monkeypatch):
    app = train_page(colours)
    app.number_input(key="train_workers").set_value(2).run()
    assert app.session_state[app_state.CONFIG].workers == 2
    monkeypatch.setattr("tltools.distributed.ray_installed", lambda: False)
    app.run()
    assert not [widget for widget in app.number_input if widget.key == "train_workers"]
    assert app.session_state[app_state.CONFIG].workers == 2, "hidden, the setting keeps its value"


def test_an_out_of_range_setting_is_one_error_line_and_the_config_keeps_its_last_good_value(colours):
    app = train_page(colours)
    app.number_input(key="train_epochs").set_value(0).run()  # with no fine-tuning epochs either: nothing to train
    assert [error.value for error in app.error] == [
        "epochs and fine_tune_epochs are both 0; train for at least one epoch"]
    assert app.session_state[app_state.CONFIG].epochs == TrainConfig().epochs


def test_fine_tuning_settings_default_to_a_tenth_of_the_learning_rate(colours):
    app = train_page(colours)
    app.number_input(key="train_ft_epochs").set_value(2).run()
    config = app.session_state[app_state.CONFIG]
    assert config.fine_tune_epochs == 2
    assert config.fine_tune_learning_rate == app.select_slider(key="train_ft_lr").value == 1e-4


@pytest.mark.slow
def test_start_trains_in_the_background_and_the_charts_follow(colours):
    app = train_page(colours)
    app.number_input(key="train_epochs").set_value(2).run()
    app.button(key="train_start").click().run()
    job_id = app.session_state[app_state.JOB_ID]
    assert job_id and app.query_params[app_state.JOB_QUERY_PARAM] == job_id
    from tltools.streamlit_bridge import job_manager

    job = job_manager().wait(job_id, timeout=300)
    app.run()
    assert job.status == "completed"
    assert any("Training completed" in message.value for message in app.success)
    assert len(app.get("plotly_chart")) == 3  # loss, accuracy, per-batch loss
    assert any(caption.value.startswith("Fast path for phase 1") for caption in app.caption), \
        "the page says the head trained on cached features"
    from tltools.training.advice import hints

    assert [info.value for info in app.info] == [hint.text for hint in hints(job.run_dir)]  # what to try next
    assert [link.proto.label for link in app.get("page_link")][-1] == "Next: evaluate this model"


@pytest.mark.slow
def test_a_refreshed_page_reattaches_to_its_job_through_the_url(colours):
    first = train_page(colours)
    first.button(key="train_start").click().run()
    job_id = first.session_state[app_state.JOB_ID]
    refreshed = AppTest.from_file(APP, default_timeout=120)
    refreshed.query_params[app_state.JOB_QUERY_PARAM] = job_id
    refreshed.run()
    assert refreshed.session_state[app_state.JOB_ID] == job_id
    # The new session gets copies of the data and settings the job trains with, so its Train page shows the run.
    dataset, settings = refreshed.session_state[app_state.DATASET], refreshed.session_state[app_state.CONFIG]
    assert dataset.classes == colours.classes and dataset is not first.session_state[app_state.DATASET]
    assert settings == first.session_state[app_state.CONFIG] and settings is not first.session_state[app_state.CONFIG]
    refreshed.switch_page("pages/train.py").run()
    assert not refreshed.exception, refreshed.exception
    assert refreshed.button(key="train_start").disabled and not refreshed.button(key="train_stop").disabled
    from tltools.streamlit_bridge import job_manager

    job_manager().stop(job_id)
    job_manager().wait(job_id, timeout=300)


@pytest.mark.slow
def test_a_session_following_a_link_to_another_job_keeps_its_own_dataset(colours, colours_dir):
    from tltools.data import load_dataset
    from tltools.streamlit_bridge import job_manager

    other = load_dataset(colours_dir, val_fraction=0.4, seed=1)
    job = job_manager().submit(fast_config(epochs=1), other, owner="someone else")
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state[app_state.DATASET] = colours
    app.query_params[app_state.JOB_QUERY_PARAM] = job.job_id
    app.run()
    assert not app.exception, app.exception
    assert app.session_state[app_state.JOB_ID] == job.job_id
    assert app.session_state[app_state.DATASET] is colours
    job_manager().wait(job.job_id, timeout=300)


@pytest.mark.slow
def test_a_link_to_a_finished_job_reads_its_data_back_from_the_run(colours):
    from tltools.streamlit_bridge import job_manager

    job = job_manager().submit(fast_config(epochs=1), colours, owner="earlier tab")
    job_manager().wait(job.job_id, timeout=300)
    assert job.status == "completed" and job.dataset is None, "a finished job holds no dataset"
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params[app_state.JOB_QUERY_PARAM] = job.job_id
    app.run()
    assert not app.exception, app.exception
    assert app.session_state[app_state.JOB_ID] == job.job_id
    dataset = app.session_state[app_state.DATASET]
    assert dataset.classes == colours.classes
    assert list(dataset.split("val")["relpath"]) == list(
        colours.with_splits(val_fraction=0.3, test_fraction=0.0, seed=0).split("val")["relpath"])


def finish_sweep(app: AppTest) -> None:
    """Wait for the session's learning-rate sweep job to end, then rerun the page (which takes its result)."""
    from tltools.streamlit_bridge import job_manager

    job_id = app.session_state["train_lr_finder_job"][0]
    assert job_manager().get(job_id).task == "tltools.jobs:lr_finder_task", "the sweep runs as a job"
    job_manager().wait(job_id, timeout=300)
    app.run()
    assert not app.exception, app.exception


@pytest.mark.slow
def test_lr_finder_plots_and_use_suggested_moves_the_slider(colours):
    app = train_page(colours)
    app.button(key="train_lr_find").click().run()
    finish_sweep(app)
    finder = app.session_state[app_state.LR_FINDER]
    assert finder is not None
    shown = float(f"{finder.suggested:.2g}")
    button = app.button(key="train_use_suggested")
    assert button.label == f"Use suggested ({shown:.1e})"
    button.click().run()
    assert app.select_slider(key="train_lr").value == shown  # exactly what the button says, not a grid step
    assert app.session_state[app_state.CONFIG].learning_rate == shown
    assert any("cached features" in text.value for text in app.markdown)
    assert not any("other settings" in warning.value for warning in app.warning)
    # Turning augmentation on (Dataset page) makes the result stale: the sweep saw other inputs.
    app.session_state[app_state.CONFIG] = app.session_state[app_state.CONFIG].replace(
        augment={"flip": "horizontal"})
    app.run()
    assert any("made under other settings (changed since: augment)" in warning.value for warning in app.warning)


@pytest.mark.slow
def test_the_lr_finder_waits_as_a_job_behind_training_with_its_button_disabled(colours):
    from tltools.streamlit_bridge import job_manager

    blocker = job_manager().submit(TrainConfig(epochs=10_000), "data", task="tests.worker_trainers:until_stopped")
    app = train_page(colours)
    try:
        app.button(key="train_lr_find").click().run()
        assert app.button(key="train_lr_find").disabled, "no second sweep while one waits or runs"
        assert any("waits for a training job to finish: place 1 in the queue" in info.value for info in app.info)
        assert app.session_state[app_state.LR_FINDER] is None
    finally:
        job_manager().stop(blocker.job_id)
    finish_sweep(app)
    assert app.session_state[app_state.LR_FINDER] is not None and not app.button(key="train_lr_find").disabled
    assert app.get("plotly_chart"), "the sweep's curve is drawn"


def test_page_reruns_leave_the_keras_session_alone(colours, monkeypatch):
    """Streamlit clears the Keras session after every rerun; a running fit must not have that done under it."""
    import keras

    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: calls.append(1))
    app = train_page(colours)
    app.run()
    app.run()
    assert calls == []


@pytest.mark.slow
def test_a_stopped_run_is_not_shown_as_completed(colours):
    from tests.waiting import wait_until
    from tltools.streamlit_bridge import job_manager

    app = train_page(colours)
    app.number_input(key="train_epochs").set_value(500).run()
    app.number_input(key="train_patience").set_value(0).run()
    app.button(key="train_start").click().run()
    job = job_manager().get(app.session_state[app_state.JOB_ID])
    wait_until(lambda: job.log.snapshot()["epochs"], 120, "no epoch finished")
    app.button(key="train_stop").click().run()
    job_manager().wait(job.job_id, timeout=120)
    app.run()
    assert job.status == "stopped"
    assert not any("completed" in message.value for message in app.success)
    assert any(warning.value.startswith("Training stopped by you after") and "best model so far is kept"
               in warning.value for warning in app.warning)
    assert f"Ran in a thread of the server's process (pid {os.getpid()})." in [caption.value for caption in app.caption]


@pytest.mark.slow
def test_find_the_best_model_runs_auto_mode_with_a_live_leaderboard_and_says_why(colours):
    from tltools.streamlit_bridge import job_manager

    app = train_page(colours)
    app.select_slider(key="train_auto_budget").set_value(60).run()
    assert app.session_state[app_state.AUTO_BUDGET_S] == 60
    app.button(key="train_auto").click().run()
    job = job_manager().get(app.session_state[app_state.JOB_ID])
    assert job.auto_budget_s == 60 and not app.button(key="train_stop").disabled  # Stop ends the search early
    job_manager().wait(job.job_id, timeout=120)
    app.run()
    assert not app.exception, app.exception
    assert job.status == "completed", job.error
    assert any(message.value.startswith("Auto mode finished: validation accuracy") for message in app.success)
    assert any(text.value.startswith("**Why this model:**") for text in app.markdown)
    board = next(frame.value for frame in app.dataframe if "validation accuracy" in frame.value.columns)
    assert len(board) >= 1 and list(board[""]).count("★ chosen") == 1
    assert board["validation accuracy"].iloc[0] == board["validation accuracy"].max()  # best first
    assert (job.run_dir / "trials.csv").is_file() and job.run_dir.name in app.success[0].value
