"""Runs page: every training run on disk; compare curves, download exports, watch, continue, distil or delete a run."""

import pandas as pd
import streamlit as st

from tltools import app_state, paths, runs
from tltools.charts.evaluation import history_metrics, runs_overlay_figure
from tltools.distill import DISTILL_FILE, comparison_table
from tltools.errors import TLToolsError
from tltools.export import cached_export, describe_export, export_run
from tltools.export.archive import LABELS_FILE, labels_text
from tltools.fileio import read_json
from tltools.streamlit_bridge import job_manager, own_run_id, require_app, show_error
from tltools.training import TrainConfig, history_frame

require_app()

# The export formats offered here, with their headings.
EXPORTS = {
    "keras": ".keras",
    "h5": ".h5",
    "tflite": "TFLite float32",
    "tflite-int8": "TFLite int8",
    "onnx": "ONNX",
    "bundle": "Bundle zip",
}
TFLITE = ("tflite", "tflite-int8")
DIFFERENT = "background-color: #fff3b0"  # a setting that differs between the compared runs

st.title("Runs")


def exports(run: runs.RunInfo) -> None:
    """Offer each export format: a one-click download when it is built, else a Build button with progress."""
    st.caption("Each export is built once per model (seconds to a minute), checked against the Keras model on "
               "training images, and kept in the run's `exports/` folder (where `python -m tltools export` puts it "
               "too). Class names are inside `.keras`/`.h5` (`tltools.json`) and in `labels.txt`.")
    with st.container(horizontal=True, gap="medium"):
        for fmt, label in EXPORTS.items():
            with st.container(width=190):
                export_cell(run, fmt, label)


def export_cell(run: runs.RunInfo, fmt: str, label: str) -> None:
    """One format: its download (with what the check found), or a button that builds it with a progress bar."""
    key = f"{run.run_id}_{fmt}"
    st.markdown(f"**{label}**")
    kept = cached_export(run, fmt)
    if kept is None and st.button("Build", key=f"runs_prepare_{key}", icon=":material/build:",
                                  help=f"Build and check the {label} export; its download appears here"):
        progress = st.progress(0.1, text=f"Building the {label} export…")
        try:
            with st.spinner("Converting and checking against the Keras model…"):
                export_run(run.path, fmt)
        except TLToolsError as error:
            progress.empty()
            show_error(error)
        else:
            progress.progress(1.0, text="Built")
            st.rerun()  # the page shows the download in place of the Build button
    if kept is None:
        return
    st.download_button(f"Download {kept.path.suffix}", kept.path.read_bytes(), kept.path.name,
                       key=f"runs_download_{key}", on_click="ignore", icon=":material/download:", help=kept.path.name)
    st.caption("  \n".join(describe_export(kept)))
    if fmt in TFLITE:
        st.download_button(LABELS_FILE, labels_text(run.classes), LABELS_FILE, "text/plain",
                           key=f"runs_labels_{key}", on_click="ignore", icon=":material/label:",
                           help="A .tflite file holds no class names: line i of labels.txt names output i")
        st.caption(f"Class names: `{LABELS_FILE}` (line i names output i), also in the bundle zip.")


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


def distilled(run: runs.RunInfo) -> None:
    """For a student run: its teacher and the comparison with the teacher and the student trained alone."""
    if not (run.path / DISTILL_FILE).is_file():
        return
    report = read_json(run.path / DISTILL_FILE)
    st.caption(f"Distilled from teacher run {report['settings']['teacher']} (temperature "
               f"{report['settings']['temperature']:g}, alpha {report['settings']['alpha']:g}).")
    table = comparison_table(report)
    if table is not None:
        st.dataframe(table, hide_index=True, width="stretch", key=f"runs_distilled_{run.run_id}")


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
    distilled(run)
    if run.status in (runs.INTERRUPTED, runs.STOPPED):
        if st.button("Continue training", key=f"runs_continue_{run.run_id}", disabled=not run.model_path.is_file(),
                     icon=":material/play_arrow:", help="Train further from this run's model with its settings"):
            try:
                continue_training(run)
            except TLToolsError as error:
                show_error(error)
    if run.model_path.is_file() and run.status != runs.RUNNING and st.button(
            "Distill", key=f"runs_distill_{run.run_id}", icon=":material/compress:",
            help="Train a smaller, faster student from this run's model (the teacher), on the Distill & adapt page"):
        st.session_state[app_state.SELECTED_RUN] = str(run.path)  # the page's run picker starts on it
        st.switch_page("pages/deploy.py")
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


st.caption("Every training run on this server, newest first; click a column's header to sort by it. "
           "★ marks the best run of each dataset (highest validation accuracy).")
all_runs = runs.list_runs()
if not all_runs:
    st.info("No training runs yet: train one on the Train page.", icon=":material/info:")
    st.stop()
histories = {run.run_id: history_frame(run.path) for run in all_runs}
table = runs.runs_table(all_runs)
table.insert(table.columns.get_loc("mode") + 1, "epochs run", [len(histories[run.run_id]) for run in all_runs])
first = ["best", "dataset", "status", "val accuracy", "test accuracy"]  # what tells runs apart, before the long id
order = [*first, *[column for column in table.columns if column not in first and column != "run"], "run"]
st.dataframe(table, hide_index=True, key="runs_table", column_order=order, column_config={
    "best": st.column_config.TextColumn("best", width=40, pinned=True),
    "LR": st.column_config.NumberColumn(format="%.1e"),
    "val accuracy": st.column_config.NumberColumn(format="percent"),
    "test accuracy": st.column_config.NumberColumn(format="percent"),
    "duration (s)": st.column_config.NumberColumn(format="%.0f s"),
    "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
})

by_id = {run.run_id: run for run in all_runs}
selected = st.session_state[app_state.SELECTED_RUN]
own = own_run_id()  # other sessions' runs may be newer
default = ([run.run_id for run in all_runs if str(run.path) == selected]
           or [own if own in by_id else all_runs[0].run_id])
chosen = st.multiselect("Runs to compare and manage", list(by_id), default=default, key="runs_chosen",
                        format_func=lambda run_id: runs.picker_label(by_id[run_id]))
chosen_histories = {run_id: histories[run_id] for run_id in chosen}
choices = history_metrics(chosen_histories) or {"val_accuracy": "validation accuracy"}
metric = st.selectbox("Curve", list(choices), format_func=choices.get, key="runs_metric")
st.plotly_chart(runs_overlay_figure(chosen_histories, metric), key="runs_overlay")
if len(chosen) > 1:
    st.subheader("Settings side by side")
    comparison = runs.settings_comparison([by_id[run_id] for run_id in chosen])
    differing = runs.differing_settings(comparison)
    only = st.toggle("Only the settings that differ", value=bool(differing), key="runs_only_differences")
    shown = comparison.loc[differing] if only else comparison
    st.caption(f"{len(differing)} setting(s) differ (highlighted).")
    st.dataframe(shown.style.apply(lambda row: [DIFFERENT if row.name in differing else ""] * len(row), axis=1),
                 key="runs_settings")
for run_id in chosen:
    run = by_id[run_id]
    with st.container(border=True, key=f"runs_manage_{run_id}"):  # stays open whatever else is chosen
        st.markdown(f"**{run_id}** · {runs.STATUS_LABELS.get(run.status, run.status)} · "
                    f"{runs.dataset_name(run) or 'unknown data'}")
        manage(run)

st.page_link("pages/evaluate.py", label="Next: evaluate the chosen run", icon=":material/arrow_forward:")
