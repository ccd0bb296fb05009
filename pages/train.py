"""Train page: learning rate on a log scale, epochs, fine-tuning, LR finder, Start/Stop and live charts."""

import numpy as np
import streamlit as st

from tltools import app_state
from tltools.charts.training import batch_loss_figure, epoch_curves_figure, lr_finder_figure
from tltools.errors import TLToolsError
from tltools.training import TrainConfig, suggest_learning_rate
from tltools.training.config import CLASS_WEIGHTS, OPTIMIZERS
from tltools.streamlit_bridge import (
    config,
    current_job,
    job_manager,
    remember_job,
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


def nearest_rate(value: float) -> float:
    """The slider position closest to ``value`` on the log scale."""
    return min(RATES, key=lambda rate: abs(np.log10(rate) - np.log10(value)))


def use_suggested(rate: float) -> None:
    """Button callback: move the learning-rate slider to the LR finder's suggestion."""
    st.session_state["train_lr"] = nearest_rate(rate)


st.title("Train")
dataset = st.session_state[app_state.DATASET]
if dataset is None:
    st.info("Load a dataset first.")
    st.page_link("pages/dataset.py", label="Go to Dataset", icon=":material/folder_zip:")
    st.stop()

settings = config()
from_run = st.session_state[app_state.FROM_RUN]
st.caption(f"{settings.backbone} on **{dataset.source}** ({len(dataset.classes)} classes). "
           "Phase 1 trains the new head on the frozen base; phase 2 (optional) fine-tunes the top of the base "
           "at a lower learning rate." + (f"  \nContinuing from run `{from_run}`." if from_run else ""))

left, right = st.columns(2)
with left:
    st.session_state.setdefault("train_lr", nearest_rate(settings.learning_rate))  # the LR finder moves it too
    # Ranges and help come from TrainConfig's fields.
    learning_rate = st.select_slider("Learning rate (log scale)", RATES, format_func=lambda rate: f"{rate:.0e}",
                                     help=TrainConfig.help("learning_rate"), key="train_lr")
    epochs = st.number_input("Epochs (head on frozen base)", *TrainConfig.bounds("epochs"), settings.epochs,
                             help=TrainConfig.help("epochs"), key="train_epochs")
    batch_size = st.select_slider("Batch size", BATCH_SIZES, settings.batch_size, help=TrainConfig.help("batch_size"),
                                  key="train_batch")
    optimizer = st.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(settings.optimizer),
                             help=TrainConfig.help("optimizer"), key="train_optimizer")
with right:
    fine_tune_epochs = st.number_input("Fine-tuning epochs (0 = skip)", *TrainConfig.bounds("fine_tune_epochs"),
                                       settings.fine_tune_epochs, help=TrainConfig.help("fine_tune_epochs"),
                                       key="train_ft_epochs")
    fine_tune_lr = st.select_slider("Fine-tuning learning rate", RATES,
                                    nearest_rate(settings.fine_tune_learning_rate or learning_rate / 10),
                                    format_func=lambda rate: f"{rate:.0e}", key="train_ft_lr",
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

try:
    settings = update_config(learning_rate=learning_rate, epochs=int(epochs), batch_size=batch_size,
                             optimizer=optimizer, fine_tune_epochs=int(fine_tune_epochs),
                             fine_tune_learning_rate=fine_tune_lr if fine_tune_epochs else None,
                             class_weights=class_weights, early_stopping_patience=int(patience),
                             label_smoothing=label_smoothing)
except TLToolsError as error:
    show_error(error)

with st.expander("Learning-rate finder", expanded=st.session_state[app_state.LR_FINDER] is not None):
    st.write("Trains briefly while the learning rate grows from 1e-7 to 1, then restores the weights.")
    if st.button("Find a learning rate", key="train_lr_find", icon=":material/search:"):
        with st.spinner("Sweeping the learning rate…"):
            try:
                st.session_state[app_state.LR_FINDER] = suggest_learning_rate(settings, dataset, steps=60)
            except TLToolsError as error:
                show_error(error)
    finder = st.session_state[app_state.LR_FINDER]
    if finder is not None:
        st.plotly_chart(lr_finder_figure(finder), key="train_lr_chart")
        st.button(f"Use suggested ({finder.suggested:.1e})", key="train_use_suggested",
                  on_click=use_suggested, args=(finder.suggested,))

job = current_job()
busy = job is not None and not job.finished
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
if stop.button("Stop", disabled=not busy, key="train_stop", icon=":material/stop:"):
    job_manager().stop(job.job_id)


@st.fragment(run_every=REFRESH_SECONDS if busy else None)
def live_progress() -> None:
    """Redraw progress and charts from the job's log; rerun the page once the job ends."""
    job = current_job()
    if job is None:
        return
    state = job.log.snapshot()
    if job.status == "queued":
        st.info(f"Waiting for another training run to finish: place {job_manager().queue_position(job.job_id)} "
                "in the queue.", icon=":material/hourglass_top:")
    elif job.status == "running":
        total = max(state["total_epochs"], 1)
        done = len(state["epochs"]) + (state["step"] / state["steps_per_epoch"] if state["steps_per_epoch"] else 0)
        eta = f", about {state['eta']:.0f} s left" if state["eta"] is not None else ""
        rate = f", learning rate {state['learning_rate']:.1e}" if state["learning_rate"] else ""
        st.progress(min(done / total, 1.0), text=f"{state['phase_name'].capitalize()}: epoch {state['epoch']}/"
                                                 f"{state['total_epochs']}{rate}{eta}")
    elif job.status == "failed":
        st.error(f"Training failed: {job.error}", icon=":material/error:")
    elif job.metrics is None:  # stopped while it waited in the queue
        st.info(f"Training {job.error}.", icon=":material/cancel:")
    else:
        accuracy = (job.metrics or {}).get("val", {}).get("accuracy")
        st.success(f"Training {job.status}" + (f": validation accuracy {accuracy:.1%}" if accuracy is not None else "")
                   + f". Run folder: `{job.run_dir.name}`", icon=":material/check_circle:")
        st.page_link("pages/evaluate.py", label="Evaluate this model", icon=":material/fact_check:")
    for message in state["messages"]:
        st.caption(message)
    if state["epochs"]:
        loss, accuracy = st.columns(2)
        loss.plotly_chart(epoch_curves_figure(state["epochs"], "loss"), key="train_loss_chart")
        accuracy.plotly_chart(epoch_curves_figure(state["epochs"], "accuracy"), key="train_accuracy_chart")
    if state["batches"]:
        st.plotly_chart(batch_loss_figure(state["batches"]), key="train_batch_chart")
    if busy and job.finished:
        st.rerun(scope="app")


live_progress()
