"""Distill & adapt page: a small student from a teacher run, adaptation to new images, latency per export format."""

import streamlit as st

from tltools import app_state
from tltools.adapt import ADAPT_FILE, DEFAULT_METHOD, METHODS, stages_table
from tltools.adapt.task import latest_adapt_job, submit_adapt
from tltools.backbones import list_backbones
from tltools.distill import DISTILL_FILE, comparison_table
from tltools.distill.task import latest_distill_job, submit_distill
from tltools.data import extract_upload
from tltools.errors import TLToolsError
from tltools.export.latency import kept_latency, latency_table, measure_run_latency
from tltools.fileio import read_json
from tltools.jobs import FAILED
from tltools.streamlit_bridge import job_manager, require_app, run_picker, show_error
from tltools.training import TrainConfig

require_app()

st.title("Distill & adapt")
st.caption("Distilling and adapting each write a new run (never changing the chosen one) in a background job: you "
           "may leave the page. The same is available as `python -m tltools distill`, `adapt` and `bench-export`.")


def running_job(job, state: dict, doing: str, stop_key: str, stop_help: str) -> int | None:
    """Show what an unfinished job is doing (or its place in the queue) and its Stop button; return the place."""
    place = job_manager().queue_position(job.job_id)
    st.markdown(f"{doing}: " + (f"waiting for another job, place {place} in the queue" if place
                                else state["phase_name"] or "starting"))
    if st.button("Stop", icon=":material/stop:", key=stop_key, help=stop_help):
        job_manager().stop(job.job_id)
    return place


run = run_picker("deploy_run", none_message="Train a model first: distillation, adaptation and latency start "
                 "from a run.")
distill_tab, adapt_tab, latency_tab = st.tabs(["Distill", "Adapt to new images", "Latency per format"])

with distill_tab:
    report_file = run.path / DISTILL_FILE
    if report_file.is_file():
        report = read_json(report_file)
        st.markdown(f"This run is a student distilled from **{report['settings']['teacher']}** "
                    f"(T = {report['settings']['temperature']:g}, alpha = {report['settings']['alpha']:g}).")
        table = comparison_table(report)
        if table is not None:
            st.dataframe(table, hide_index=True, width="stretch")
    st.markdown("Train a smaller, faster **student** from this run (the **teacher**): it learns from the "
                "teacher's softened probabilities and the true labels, on the teacher's own split.")
    names = [spec.name for spec in list_backbones()]
    offline = {spec.name for spec in list_backbones() if spec.offline}
    left, right = st.columns(2)
    student = left.selectbox("Student backbone", names, index=names.index("efficientnet_lite0"),
                             format_func=lambda name: name + ("" if name in offline else " (downloads weights)"))
    size = right.number_input("Student input size (px)", min_value=32, max_value=1024, value=160, step=8)
    defaults = TrainConfig()
    temperature = left.slider("Temperature T", TrainConfig.bounds("distill_temperature")[0], 10.0,
                              defaults.distill_temperature, 0.5,
                              help="Softens both models' probabilities; higher passes on more of the teacher's "
                                   "view of similar classes.")
    alpha = right.slider("Weight of the true labels (alpha)", *TrainConfig.bounds("distill_alpha"),
                         defaults.distill_alpha, 0.05,
                         help="0: learn from the teacher only; 1: from the labels only (the student alone).")
    epochs = left.number_input("Epochs", min_value=1, max_value=500, value=10)
    compare = right.checkbox("Compare with the student trained alone (int8 size, latency)", value=True)
    unlabeled = st.file_uploader("Optional: unlabelled images (.zip) the teacher labels for the student",
                                 type=["zip"], key="distill_unlabeled",
                                 help="More images to learn the teacher's view from, no labels needed (e.g. the "
                                      "rest of a collection you labelled only part of).")
    distill_owner = st.session_state[app_state.SESSION_ID]
    distill_job = latest_distill_job(job_manager(), distill_owner, run)
    distilling = distill_job is not None and not distill_job.finished
    st.caption("Distillation runs as a background job (you may leave the page); the student is a new run whose "
               "settings name this run as its teacher.")
    if st.button("Distill", type="primary", disabled=distilling):
        try:
            unlabeled_dir = extract_upload(unlabeled.getvalue(), unlabeled.name) if unlabeled is not None else None
            submit_distill(job_manager(), run, owner=distill_owner, compare=compare, student=student,
                           image_size=int(size), temperature=temperature, alpha=alpha, epochs=int(epochs),
                           unlabeled=unlabeled_dir)
            st.rerun()
        except TLToolsError as error:
            show_error(error)

    @st.fragment(run_every=2 if distilling else None)
    def distill_progress() -> None:
        """The distillation job's live progress (epochs, validation accuracy) and Stop; its comparison once done."""
        job = latest_distill_job(job_manager(), distill_owner, run)
        if job is None:
            return
        if job.finished and distilling:
            st.rerun()  # the whole page: the Distill button comes back, the polling stops
        state = job.log.snapshot()
        with st.container(border=True):
            if not job.finished:
                place = running_job(job, state, f"**Distilling** into {job.config.backbone}", "distill_stop",
                                    "Ends after the current batch; the student keeps its best epoch so far and "
                                    "the comparison is skipped.")
                total = state.get("total_epochs") or 0
                done = len(state.get("epochs") or [])
                if total and not place:
                    last = (state.get("epochs") or [{}])[-1]
                    accuracy = last.get("val_accuracy")
                    st.progress(min(done / total, 1.0), text=f"epoch {done} of {total}" + (
                        f", validation accuracy {accuracy:.3f}" if accuracy is not None else ""))
            elif job.status == FAILED:
                st.error(f"Distillation failed: {job.error}", icon=":material/error:")
            else:
                test = (job.metrics or {}).get("test") or {}
                st.success(f"Student run **{job.run_dir.name}** ({job.status})"
                           + (f": test accuracy {test['accuracy']:.4f}" if "accuracy" in test else "")
                           + "; pick it above to evaluate or export it.", icon=":material/check_circle:")
                table = comparison_table(job.summary or {})
                if table is not None:
                    st.dataframe(table, hide_index=True, width="stretch")
            if state["messages"]:
                st.code("\n".join(state["messages"][-8:]), language=None)

    distill_progress()

with adapt_tab:
    report_file = run.path / ADAPT_FILE
    if report_file.is_file():
        st.markdown(f"This run was adapted from **{read_json(report_file)['source_run']}**:")
        st.dataframe(stages_table(read_json(report_file)), hide_index=True, width="stretch")
    st.markdown("Make this run's model work on images from a new camera, stain, season or site, from a zip of "
                "**unlabelled** images of it. A zip of a few **labelled** ones (class folders) is used only to "
                "measure how much adaptation helps. Adaptation runs as a background job: you may leave the page.")
    target = st.file_uploader("Unlabelled images of the new domain (.zip)", type=["zip"], key="deploy_target")
    labelled = st.file_uploader("Optional: labelled images of the new domain (.zip of class folders)", type=["zip"],
                                key="deploy_labelled")
    method = st.radio("Method", METHODS, index=METHODS.index(DEFAULT_METHOD), horizontal=True,
                      help="self-train: pseudo-labels over a few rounds, with the run's own images under random "
                           "colour casts, blur and JPEG; adabn: BatchNorm statistics only (seconds); both: AdaBN, "
                           "then self-training.")
    owner = st.session_state[app_state.SESSION_ID]
    adapt_job = latest_adapt_job(job_manager(), owner, run)
    busy = adapt_job is not None and not adapt_job.finished
    if st.button("Adapt", type="primary", disabled=target is None or busy):
        try:
            target_dir = extract_upload(target.getvalue(), target.name)
            labels_dir = extract_upload(labelled.getvalue(), labelled.name) if labelled is not None else None
            submit_adapt(job_manager(), run, target_dir, target_labels=labels_dir, method=method, owner=owner)
            st.rerun()
        except TLToolsError as error:
            show_error(error)

    @st.fragment(run_every=2 if busy else None)
    def adapt_progress() -> None:
        """The adaptation job's live progress and Stop; its stage table once it has ended."""
        job = latest_adapt_job(job_manager(), owner, run)
        if job is None:
            return
        if job.finished and busy:
            st.rerun()  # the whole page: the Adapt button comes back, the polling stops
        state = job.log.snapshot()
        with st.container(border=True):
            if not job.finished:
                running_job(job, state, f"**Adapting** ({job.options['method']})", "adapt_stop",
                            "Ends after the current stage or round; the run keeps the model adapted so far.")
            elif job.status == FAILED:
                st.error(f"Adaptation failed: {job.error}", icon=":material/error:")
            else:
                st.success(f"Adapted run **{job.run_dir.name}** ({job.status}); pick it above to evaluate or "
                           "export it.", icon=":material/check_circle:")
                if job.summary:
                    st.dataframe(stages_table(job.summary), hide_index=True, width="stretch")
            if state["messages"]:
                st.code("\n".join(state["messages"][-12:]), language=None, wrap_lines=True)

    adapt_progress()

with latency_tab:
    st.markdown("Milliseconds per image at batch 1 (median after warm-up) and file size of this run's model in "
                "each deployment format, each export verified against the Keras model first.")
    kept = kept_latency(run)
    if st.button("Measure latency", type="primary"):
        try:
            with st.spinner("Exporting and timing each format…"):
                kept = measure_run_latency(run.path)
        except TLToolsError as error:
            show_error(error)
    if kept is not None:
        machine = kept["machine"]
        st.caption(f"Measured on {machine['cpu']} ({machine['cores']} cores), median of {kept['repeats']} runs "
                   f"after {kept['warmup']} warm-up runs; threads: LiteRT and ONNX Runtime as listed, "
                   "TensorFlow its default (all cores).")
        st.dataframe(latency_table(kept), hide_index=True, width="stretch")
