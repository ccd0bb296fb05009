"""Train page: learning rate on a log scale, epochs, fine-tuning, LR finder, Start/Stop and live charts."""

import numpy as np
import streamlit as st

import pandas as pd

from tltools import app_state
from tltools.auto import describe, read_trials
from tltools.charts.training import batch_loss_figure, epoch_curves_figure, lr_finder_figure, trials_figure
from tltools.distributed import ray_installed
from tltools.errors import TLToolsError
from tltools.jobs import LR_FINDER_TASK
from tltools.training import LRFinderResult, TrainConfig
from tltools.training.config import CLASS_WEIGHTS, OPTIMIZERS
from tltools.training.advice import hints
from tltools.training.progress import progress_text
from tltools.streamlit_bridge import (
    config,
    current_job,
    dataset_name,
    job_manager,
    remember_job,
    remember_session,
    require_app,
    show_error,
    update_config,
)

require_app()

# Learning rates offered by the log-scale sliders: 1e-5 … 1e-1, four steps per decade.
RATES = [float(f"{rate:.2g}") for rate in np.logspace(-5, -1, 17)]
# Batch sizes offered: powers of two within TrainConfig's range for batch_size.
BATCH_SIZES = [size for size in (4, 8, 16, 32, 64, 128) if TrainConfig.bounds("batch_size")[0] <= size
               <= TrainConfig.bounds("batch_size")[1]]
REFRESH_SECONDS = 1.0
# This session's running learning-rate sweep: (job id, the swept settings, the dataset's fingerprint).
FINDER_JOB = "train_lr_finder_job"


# Settings that do not change what the LR finder's sweep sees (phase 1, the training split):
# a result made under other values of any other setting is stale.
NOT_SWEPT = {"learning_rate", "epochs", "early_stopping_patience", "reduce_lr_patience", "reduce_lr_factor",
             "fine_tune_epochs", "fine_tune_learning_rate", "unfreeze", "train_batchnorm", "tensorboard", "top_k",
             "class_weights"}
# Auto mode's time budgets offered, in seconds.
BUDGETS = [60, 120, 180, 300, 600, 900, 1200, 1800, 3600]


def two_digits(rate: float) -> float:
    """``rate`` rounded to two significant digits (how every rate is shown and set)."""
    return float(f"{rate:.2g}")


def nearest_rate(value: float) -> float:
    """The slider position closest to ``value`` on the log scale."""
    return min(RATES, key=lambda rate: abs(np.log10(rate) - np.log10(value)))


def rate_options(*extra: float | None) -> list[float]:
    """The slider's rates: the log grid plus ``extra`` exact values (the saved rate, the finder's suggestion)."""
    return sorted({*RATES, *(two_digits(rate) for rate in extra if rate)})


def use_suggested(rate: float) -> None:
    """Button callback: set the learning-rate slider to the LR finder's suggestion, as shown on the button."""
    st.session_state["train_lr"] = two_digits(rate)


def swept_settings(settings: TrainConfig) -> dict:
    """The settings the LR finder's sweep depends on."""
    return {name: value for name, value in settings.model_dump().items() if name not in NOT_SWEPT}


def changed_since(made_under, settings: TrainConfig, dataset) -> list[str]:
    """Names of the settings (or "the dataset") that differ from those an LR finder result was made under."""
    if made_under is None:
        return []
    before, fingerprint = made_under
    now = swept_settings(settings)
    changed = [name.replace("_", " ") for name in now if now[name] != before.get(name)]
    return changed + (["the dataset"] if fingerprint != dataset.fingerprint else [])


def finder_job():
    """This session's learning-rate sweep job (:data:`~tltools.jobs.LR_FINDER_TASK`), once it has ended taking its
    result into the session (the chart, the settings it was made under); None when there is none."""
    pending = st.session_state.get(FINDER_JOB)
    sweep = job_manager().get(pending[0]) if pending else None
    if sweep is None or not sweep.finished:
        return sweep
    del st.session_state[FINDER_JOB]
    if sweep.status == "completed":
        try:
            st.session_state[app_state.LR_FINDER] = LRFinderResult.from_dict(sweep.summary or {})
            st.session_state[app_state.LR_FINDER_MADE_UNDER] = (pending[1], pending[2])
            remember_session()
        except TLToolsError as error:
            show_error(error)
    elif sweep.status == "failed":
        show_error(TLToolsError(f"the learning-rate finder failed: {sweep.error}"))
    return sweep


@st.fragment(run_every=REFRESH_SECONDS)
def sweep_progress() -> None:
    """While the sweep job waits or runs: say so; once it ends, rerun the page, which draws its result."""
    pending = st.session_state.get(FINDER_JOB)
    sweep = job_manager().get(pending[0]) if pending else None
    if sweep is None or sweep.finished:
        st.rerun(scope="app")
    place = job_manager().queue_position(sweep.job_id)
    if place is not None:
        st.info(f"The sweep waits for a training job to finish: place {place} in the queue.",
                icon=":material/hourglass_top:")
    else:
        st.info(f"Sweeping the learning rate ({sweep.where or 'starting'})…", icon=":material/search:")


def budget_label(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


st.title("Train")
dataset = st.session_state[app_state.DATASET]
if dataset is None:
    st.info("Load a dataset first.")
    st.page_link("pages/dataset.py", label="Go to Dataset", icon=":material/folder_zip:")
    st.stop()

settings = config()
from_run = st.session_state[app_state.FROM_RUN]
job = current_job()
busy = job is not None and not job.finished
sweep = finder_job()  # before the slider: a result that has just arrived offers its rate there
sweeping = sweep is not None and not sweep.finished
st.caption(f"{settings.backbone} on **{dataset_name(dataset)}** ({len(dataset.classes)} classes)."
           + (f"  \nContinuing from run `{from_run}`." if from_run else ""))

with st.container(border=True):
    st.subheader("Find the best model")
    st.write("Tries the backbones that work offline and many head settings on cached features, then fine-tunes "
             "when that pays, all within the time you give it. The test images are never used for a choice.")
    budget_column, go_column = st.columns([2, 1], vertical_alignment="bottom")
    budget = budget_column.select_slider(
        "Time budget", BUDGETS, st.session_state[app_state.AUTO_BUDGET_S] if
        st.session_state[app_state.AUTO_BUDGET_S] in BUDGETS else 600, format_func=budget_label,
        help="Everything included: computing features, the search and the final run.", key="train_auto_budget")
    if budget != st.session_state[app_state.AUTO_BUDGET_S]:
        st.session_state[app_state.AUTO_BUDGET_S] = budget
        remember_session()
    if go_column.button("Find the best model", type="primary", disabled=busy, key="train_auto",
                        icon=":material/auto_awesome:", width="stretch"):
        try:
            job = job_manager().submit(settings, dataset, owner=st.session_state[app_state.SESSION_ID],
                                       auto_budget_s=float(budget))
            remember_job(job.job_id)
            st.rerun()
        except TLToolsError as error:
            show_error(error)

st.subheader("Or set it yourself")
st.caption("Phase 1 trains the new head on the frozen base until the validation loss stops improving; phase 2 "
           "(optional) fine-tunes the top of the base at a lower learning rate.")
left, right = st.columns(2)
with left:
    st.session_state.setdefault("train_lr", two_digits(settings.learning_rate))  # the LR finder sets it too
    finder = st.session_state[app_state.LR_FINDER]
    # Ranges and help come from TrainConfig's fields.
    learning_rate = st.select_slider("Learning rate (log scale)",
                                     rate_options(settings.learning_rate, st.session_state["train_lr"],
                                                  finder.suggested if finder else None),
                                     format_func=lambda rate: f"{rate:.1e}",
                                     help=TrainConfig.help("learning_rate"), key="train_lr")
    epochs = st.number_input(f"Epochs, at most (head on frozen base; early stopping ends sooner)",
                             *TrainConfig.bounds("epochs"), settings.epochs,
                             help=TrainConfig.help("epochs"), key="train_epochs")
    batch_size = st.select_slider("Batch size", BATCH_SIZES, settings.batch_size, help=TrainConfig.help("batch_size"),
                                  key="train_batch")
    optimizer = st.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(settings.optimizer),
                             help=TrainConfig.help("optimizer"), key="train_optimizer")
with right:
    fine_tune_epochs = st.number_input("Fine-tuning epochs, at most (0 = skip)",
                                       *TrainConfig.bounds("fine_tune_epochs"),
                                       settings.fine_tune_epochs, help=TrainConfig.help("fine_tune_epochs"),
                                       key="train_ft_epochs")
    fine_tune_lr = st.select_slider("Fine-tuning learning rate",
                                    rate_options(settings.fine_tune_learning_rate or learning_rate / 10),
                                    two_digits(settings.fine_tune_learning_rate or learning_rate / 10),
                                    format_func=lambda rate: f"{rate:.1e}", key="train_ft_lr",
                                    help=TrainConfig.help("fine_tune_learning_rate"), disabled=not fine_tune_epochs)
    st.caption(f"Fine-tuning unfreezes: **{settings.unfreeze}** (set on the Model page).")
    class_weights = st.radio("Class weights", CLASS_WEIGHTS, CLASS_WEIGHTS.index(settings.class_weights),
                             horizontal=True, help=TrainConfig.help("class_weights"), key="train_class_weights")
    patience = st.number_input("Early-stopping patience (epochs, 0 = off)",
                               *TrainConfig.bounds("early_stopping_patience"),
                               settings.early_stopping_patience, help=TrainConfig.help("early_stopping_patience"),
                               key="train_patience")
    label_smoothing = st.slider("Label smoothing", *TrainConfig.bounds("label_smoothing"), settings.label_smoothing,
                                0.05, help=TrainConfig.help("label_smoothing"), key="train_smoothing")
    workers = settings.workers
    if ray_installed():  # data-parallel training needs Ray (requirements-ray.txt)
        workers = st.number_input("Workers (data-parallel processes)", *TrainConfig.bounds("workers"),
                                  settings.workers, help=TrainConfig.help("workers"), key="train_workers")

try:
    settings = update_config(learning_rate=learning_rate, epochs=int(epochs), batch_size=batch_size,
                             optimizer=optimizer, fine_tune_epochs=int(fine_tune_epochs),
                             fine_tune_learning_rate=fine_tune_lr if fine_tune_epochs else None,
                             class_weights=class_weights, early_stopping_patience=int(patience),
                             label_smoothing=label_smoothing, workers=int(workers))
except TLToolsError as error:
    show_error(error)

STEPS = 60
with st.expander("Learning-rate finder", expanded=st.session_state[app_state.LR_FINDER] is not None or sweeping):
    where = ("on augmented images, as phase 1 will train" if settings.augment.enabled else
             "on the cached features of the frozen base, exactly as phase 1 trains the head")
    st.write(f"Trains the new head for {STEPS} batches {where}, while the learning rate grows from 1e-7 to 1, "
             "then restores the weights.")
    if st.button("Find a learning rate", key="train_lr_find", icon=":material/search:", disabled=sweeping,
                 help="Runs as a job, like training; it waits for a running training job to finish."
                 if not sweeping else "The sweep is running."):
        try:
            sweep = job_manager().submit(settings, dataset, owner=st.session_state[app_state.SESSION_ID],
                                         task=LR_FINDER_TASK, options={"steps": STEPS})
            st.session_state[FINDER_JOB] = (sweep.job_id, swept_settings(settings), dataset.fingerprint)
            st.rerun()
        except TLToolsError as error:
            show_error(error)
    if sweeping:
        sweep_progress()
    finder = st.session_state[app_state.LR_FINDER]
    if finder is not None:
        stale = changed_since(st.session_state[app_state.LR_FINDER_MADE_UNDER], settings, dataset)
        if stale:
            st.warning("This result was made under other settings (changed since: " + ", ".join(stale)
                       + "); run the finder again.", icon=":material/history:")
        train_images = len(dataset.split("train"))
        passes = STEPS * settings.batch_size / max(train_images, 1)
        st.plotly_chart(lr_finder_figure(finder), key="train_lr_chart")
        st.caption(f"Each point is one batch's loss; the line smooths them over neighbouring steps on both sides, "
                   f"so it does not lag. The sweep saw the {train_images} training images about {passes:.1f} "
                   "times, so at high rates part of the fall is the head having learned during the sweep, not the "
                   "rate: the suggestion sits where the smoothed loss falls fastest and longest, before that.")
        suggested = two_digits(finder.suggested)
        st.button(f"Use suggested ({suggested:.1e})", key="train_use_suggested", on_click=use_suggested,
                  args=(suggested,), disabled=st.session_state["train_lr"] == suggested)

start, stop = st.columns(2)
if start.button("Start training", type="primary", disabled=busy, key="train_start", icon=":material/play_arrow:"):
    try:
        job = job_manager().submit(settings, dataset, owner=st.session_state[app_state.SESSION_ID],
                                   from_run=from_run)
        remember_job(job.job_id)
        st.session_state[app_state.FROM_RUN] = None
        st.rerun()
    except TLToolsError as error:
        show_error(error)
if stop.button("Stop", disabled=not busy, key="train_stop", icon=":material/stop:",
               help="Auto mode stops after the current trial and trains the best one so far."
               if busy and job.auto_budget_s is not None else None):
    job_manager().stop(job.job_id)


def leaderboard(trials: list[dict]) -> pd.DataFrame:
    """The trials best first, each trial's settings in a few words (:func:`tltools.auto.describe`)."""
    frame = pd.DataFrame(trials)
    if frame.empty:
        return frame
    frame = frame.sort_values(["val_accuracy", "trial"], ascending=[False, True], na_position="last")
    params = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return pd.DataFrame({
        "": ["★ chosen" if chosen in (True, "True", 1) else "" for chosen in frame["chosen"]],
        "trial": frame["trial"],
        "validation accuracy": frame["val_accuracy"],
        "settings": [describe(row) for row in params],
        "epochs": frame["epochs"],
        "seconds": frame["seconds"].round(1),
        "state": frame["state"],
    })


def show_trials(trials: list[dict], key: str) -> None:
    """The live (or final) leaderboard and the chart of score against trial."""
    if not trials:
        return
    st.plotly_chart(trials_figure(trials), key=f"{key}_chart")
    board = leaderboard(trials)
    st.dataframe(board, hide_index=True, width="stretch", height=min(36 * (len(board) + 1) + 4, 400),
                 key=f"{key}_table",
                 column_config={"validation accuracy": st.column_config.NumberColumn(format="%.3f")})


STATUS_AT_RUN = job.status if job is not None else None  # the sidebar shows it; a change reruns the page


@st.fragment(run_every=REFRESH_SECONDS if busy else None)
def live_progress() -> None:
    """Redraw progress and charts from the job's log; rerun the page once the job ends."""
    job = current_job()
    if job is None:
        return
    state = job.log.snapshot()
    auto = job.auto_budget_s is not None
    if job.status == "queued":
        st.info(f"Waiting for another training run to finish: place {job_manager().queue_position(job.job_id)} "
                "in the queue.", icon=":material/hourglass_top:")
    elif job.status == "running" and auto:
        used = min(state["elapsed"] / job.auto_budget_s, 1.0)
        st.progress(used, text=f"Finding the best model: {state['elapsed']:.0f} s of {job.auto_budget_s:.0f} s, "
                               f"{len(state['trials'])} trials so far")
    elif job.status == "running":
        done, text = progress_text(state, 2 if job.config.fine_tune_epochs else 1)
        st.progress(done, text=text)
    elif job.status == "failed":
        st.error(f"Training failed: {job.error}", icon=":material/error:")
    elif job.metrics is None:  # stopped while it waited in the queue
        st.info(f"Training {job.error}.", icon=":material/cancel:")
    else:
        accuracy = (job.metrics or {}).get("val", {}).get("accuracy")
        scored = f"validation accuracy {accuracy:.1%}" if accuracy is not None else "no validation accuracy"
        if job.status == "stopped":
            st.warning(f"Training stopped by you after {job.metrics.get('epochs_run', 0)} epochs: the best model so "
                       f"far is kept ({scored}). Run `{job.run_dir.name}`.", icon=":material/stop_circle:")
        elif auto:
            st.success(f"Auto mode finished: {scored}. Run `{job.run_dir.name}`.", icon=":material/check_circle:")
            if job.auto and job.auto.get("why"):
                st.write(f"**Why this model:** {job.auto['why']}.")
            if job.auto and job.auto.get("fine_tuning"):
                st.write(f"**Fine-tuning:** {job.auto['fine_tuning']}.")
        else:
            st.success(f"Training completed: {scored}. Run `{job.run_dir.name}`.", icon=":material/check_circle:")
        show_hints(job.run_dir)
    if job.where and job.status != "queued":
        st.caption(f"{'Runs' if job.status == 'running' else 'Ran'} in {job.where}.")
    if auto:
        trials = state["trials"] if not job.finished else read_trials(job.run_dir).to_dict("records") or state["trials"]
        show_trials(trials, "train_trials")
    for message in state["messages"]:
        st.caption(message)
    if state["epochs"]:
        loss, accuracy = st.columns(2)
        loss.plotly_chart(epoch_curves_figure(state["epochs"], "loss"), key="train_loss_chart")
        accuracy.plotly_chart(epoch_curves_figure(state["epochs"], "accuracy"), key="train_accuracy_chart")
    if state["batches"]:
        st.plotly_chart(batch_loss_figure(state["batches"]), key="train_batch_chart")
    if job.finished and job.metrics is not None:
        st.page_link("pages/evaluate.py", label="Next: evaluate this model", icon=":material/arrow_forward:")
    if busy and job.status != STATUS_AT_RUN:  # started, or ended: the sidebar and the buttons follow
        st.rerun(scope="app")


def show_hints(run_dir) -> None:
    """What the run's curves and metrics suggest trying next, each naming the setting to change."""
    for hint in hints(run_dir):
        st.info(hint.text, icon=":material/lightbulb:")


live_progress()
