"""Runs page: every training run on disk; compare curves, download exports, watch, continue or delete a run."""

import pandas as pd
import streamlit as st

from tltools import app_state, paths, runs
from tltools.charts.evaluation import HISTORY_METRICS, runs_overlay_figure
from tltools.errors import TLToolsError
from tltools.export import cached_export, describe_export, export_run
from tltools.streamlit_bridge import job_manager, own_run_id, require_app, show_error
from tltools.training import TrainConfig, history_frame

require_app()

# The export formats offered here, with their headings.
EXPORTS = {
    "keras": ".keras",
    "h5": ".h5",
    "tflite": "TFLite float32",
    "tflite-int8": "TFLite int8",
    "bundle": "Bundle zip",
}

st.title("Runs")


def exports(run: runs.RunInfo) -> None:
    """Offer each export format: build it on the first "prepare", then download the kept file."""
    st.caption("Each export is built once per model, checked against the Keras model on training images, "
               "and kept in the run's `exports/` folder (where `python -m tltools export` puts it too).")
    columns = st.columns(len(EXPORTS))
    for column, (fmt, label) in zip(columns, EXPORTS.items()):
        kept = cached_export(run, fmt)
        key = f"{run.run_id}_{fmt}"
        with column:
            st.markdown(f"**{label}**")
            if kept is None and st.button("Prepare", key=f"runs_prepare_{key}", help=f"Build the {label} export"):
                try:
                    with st.spinner(f"Building and checking the {label} export…"):
                        export_run(run.path, fmt)
                except TLToolsError as error:
                    show_error(error)
                else:
                    st.rerun()
            if kept is not None:
                st.download_button("Download", kept.path.read_bytes(), kept.path.name, key=f"runs_download_{key}",
                                   on_click="ignore", icon=":material/download:", help=kept.path.name)
                st.caption("  \n".join(describe_export(kept)))


def continue_training(run: runs.RunInfo) -> None:
    """Open the Train page set to continue ``run``: its settings, its model, and its data when none is loaded.

    Raises:
        TLToolsError: The run's settings are invalid, or its data cannot be loaded again.
    """
    config = TrainConfig.from_dict(run.config)
    if st.session_state[app_state.DATASET] is None:
        root = runs.dataset_root(run)
        with st.spinner(f"Loading the run's dataset from {root}…"):
            st.session_state[app_state.DATASET] = runs.load_run_dataset(run)
        st.session_state[app_state.DATASET_ORIGIN] = str(root)
    st.session_state[app_state.CONFIG] = config
    st.session_state[app_state.FROM_RUN] = str(run.path)
    st.switch_page("pages/train.py")


def manage(run: runs.RunInfo) -> None:
    """Exports, "continue training" and deletion of one run."""
    if run.error:
        st.caption(f"{run.status}: {run.error}")
    if run.status == runs.RUNNING:
        job = job_manager().job_for_run(run.path)
        if job is None:
            st.caption("It trains in another process (the command line?); its live view is where it was started.")
        else:
            st.page_link("pages/train.py", label="Watch it train", icon=":material/monitoring:",
                         query_params={app_state.JOB_QUERY_PARAM: job.job_id})
    if run.model_path.is_file() and run.status != runs.RUNNING:
        exports(run)
    else:
        st.caption("Exports are offered once the run has a model and has stopped training.")
    if run.status in (runs.INTERRUPTED, runs.STOPPED):
        if st.button("Continue training", key=f"runs_continue_{run.run_id}", disabled=not run.model_path.is_file(),
                     icon=":material/play_arrow:", help="Train further from this run's model with its settings"):
            try:
                continue_training(run)
            except TLToolsError as error:
                show_error(error)
    confirmed = st.checkbox(f"yes, delete {run.run_id}", key=f"runs_confirm_{run.run_id}")
    if st.button("Delete run", key=f"runs_delete_{run.run_id}", disabled=not confirmed, icon=":material/delete:"):
        try:
            runs.delete_run(run.path)
        except TLToolsError as error:
            show_error(error)
        else:
            if st.session_state[app_state.SELECTED_RUN] == str(run.path):
                st.session_state[app_state.SELECTED_RUN] = None
            st.rerun()


st.caption(f"Every training run in `{paths.runs_dir()}`, newest first.")
all_runs = runs.list_runs()
if not all_runs:
    st.info("No training runs yet: train one on the Train page.", icon=":material/info:")
    st.stop()
histories = {run.run_id: history_frame(run.path) for run in all_runs}
st.dataframe(pd.DataFrame([{
    "run": run.run_id,
    "status": run.status,
    "backbone": run.config.get("backbone"),
    "best val accuracy": run.best_val_accuracy,
    "epochs": len(histories[run.run_id]),
    "started": run.created_at,
} for run in all_runs]), hide_index=True, column_config={
    "best val accuracy": st.column_config.NumberColumn(format="percent"),
    "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
})

by_id = {run.run_id: run for run in all_runs}
selected = st.session_state[app_state.SELECTED_RUN]
own = own_run_id()  # other sessions' runs may be newer
default = ([run.run_id for run in all_runs if str(run.path) == selected]
           or [own if own in by_id else all_runs[0].run_id])
chosen = st.multiselect("Runs to compare and manage", list(by_id), default=default, key="runs_chosen")
metric = st.selectbox("Curve", list(HISTORY_METRICS), format_func=HISTORY_METRICS.get, key="runs_metric")
st.plotly_chart(runs_overlay_figure({run_id: histories[run_id] for run_id in chosen}, metric), key="runs_overlay")
for run_id in chosen:
    with st.expander(f"{run_id} ({by_id[run_id].status})", expanded=len(chosen) == 1):
        manage(by_id[run_id])
