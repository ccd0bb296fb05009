"""Evaluate page: a run's metrics on its held-out images, where it errs, and where its model looks."""

import streamlit as st

from tltools import runs
from tltools.charts.evaluation import INFORMATIVE_AUC, confusion_matrix_figure, informative_roc_classes, roc_figure
from tltools.errors import TLToolsError
from tltools.evaluation import evaluate_run, gradcam, per_class_table
from tltools.streamlit_bridge import cached_model, require_app, run_picker, show_error

require_app()

GALLERY_SIZE = 12
SPLIT_TITLES = {"val": "Validation", "test": "Test"}
ROW_PX, HEADER_PX = 35, 38  # st.dataframe's row and header heights: a table this tall shows every row
ECE_HELP = ("Expected calibration error: how far the model's confidence is from how often it is right "
            "(0 = a 90 % confident answer is right 90 % of the time).")

st.title("Evaluate")


@st.cache_data(max_entries=256, show_spinner=False)
def gradcam_overlay(model_file: str, model_modified: float, image: str):
    """Return the Grad-CAM overlay of an image for its predicted class; ``model_modified`` keys the cache."""
    model, _, _ = cached_model(model_file)
    return gradcam(model, image).overlay


def gallery(run: runs.RunInfo, split: str, mistakes: list[dict]) -> None:
    """Show the most confident mistakes, or their Grad-CAM overlays."""
    st.subheader(f"Misclassified images ({len(mistakes)})")
    if not mistakes:
        st.success("Every image of this split is classified correctly.", icon=":material/check_circle:")
        return
    root = runs.dataset_root(run)
    shown = [item for item in mistakes[:GALLERY_SIZE] if (root / item["path"]).is_file()]
    if len(shown) < len(mistakes[:GALLERY_SIZE]):
        st.warning(f"{len(mistakes[:GALLERY_SIZE]) - len(shown)} of these images are gone from {root}; "
                   "restore the dataset there to see them.", icon=":material/image_not_supported:")
    if not shown:
        return
    captions = [f"{item['true']} → {item['predicted']} ({item['confidence']:.0%})" for item in shown]
    files = [str(root / item["path"]) for item in shown]
    if st.toggle("Grad-CAM: where the model looked", key=f"evaluate_gradcam_{split}"):
        with st.spinner(f"Computing Grad-CAM for {len(files)} images…"):
            modified = run.model_path.stat().st_mtime
            files = [gradcam_overlay(str(run.model_path), modified, file) for file in files]
    st.image(files, caption=captions, width=150)
    if len(mistakes) > GALLERY_SIZE:
        st.caption(f"The {GALLERY_SIZE} most confident of {len(mistakes)} mistakes.")


def headline(metrics: dict) -> None:
    """Show a split's headline numbers as bordered metrics that wrap onto new rows on a narrow screen."""
    with st.container(horizontal=True, gap="small"):
        st.metric("Accuracy", f"{metrics['accuracy']:.1%}", border=True, width="content")
        st.metric("Macro F1", f"{metrics['macro_f1']:.3f}", border=True, width="content")
        if metrics["top_k"] < len(metrics["per_class"]):
            st.metric(f"Top-{metrics['top_k']} accuracy", f"{metrics['top_k_accuracy']:.1%}", border=True,
                      width="content")
        else:  # top-k covers every class: always 100 %
            st.metric("Weighted F1", f"{metrics['weighted_f1']:.3f}", border=True, width="content")
        st.metric("Loss", f"{metrics['loss']:.4f}", border=True, width="content",
                  help="Cross-entropy on these images; lower is better.")
        st.metric("ECE", f"{metrics['ece']:.4f}", border=True, width="content", help=ECE_HELP)
    st.caption(f"{metrics['num_images']} images. ECE: {ECE_HELP}")


def roc_section(metrics: dict, split: str) -> None:
    """ROC curves only of the classes the model does not separate (almost) perfectly; the AUCs are in the table."""
    st.subheader("ROC curves")
    weak = informative_roc_classes(metrics)
    if not weak:
        st.caption(f"Every class has an AUC of at least {INFORMATIVE_AUC} (see the per-class table): its ROC curve "
                   "would sit in the top-left corner, so none is drawn.")
        if st.toggle("Draw them anyway", key=f"evaluate_roc_all_{split}"):
            st.plotly_chart(roc_figure(metrics), key=f"evaluate_roc_{split}")
        return
    st.caption(f"The {len(weak)} class(es) with an AUC below {INFORMATIVE_AUC}, worst first; the others are "
               "separated (almost) perfectly.")
    st.plotly_chart(roc_figure(metrics, weak), key=f"evaluate_roc_{split}")


def show_split(run: runs.RunInfo, split: str, metrics: dict) -> None:
    """Show one split's headline metrics, confusion matrix, per-class table, ROC curves and mistakes."""
    headline(metrics)
    st.subheader("Confusion matrix")
    normalised = st.toggle("Shares of each true class", key=f"evaluate_normalised_{split}")
    st.plotly_chart(confusion_matrix_figure(metrics, normalised), key=f"evaluate_confusion_{split}")
    st.subheader("Per class")
    table = per_class_table(metrics)
    scores = {column: st.column_config.NumberColumn(format="%.3f") for column in ("precision", "recall", "f1", "auc")}
    st.dataframe(table, hide_index=True, column_config=scores, height=HEADER_PX + ROW_PX * len(table) + 2)
    roc_section(metrics, split)
    try:
        gallery(run, split, metrics["misclassified"])
    except TLToolsError as error:
        show_error(error)


run = run_picker("evaluate_run", none_message="No run has a model yet: train one on the Train page.")
if run.status != runs.COMPLETED:
    st.caption(f"This run is **{runs.STATUS_LABELS.get(run.status, run.status)}**"
               + (f" ({run.error})" if run.error else "") + ", not completed: its best checkpoint so far is evaluated.")
metrics = run.metrics
if metrics is None:
    if run.status == runs.RUNNING:
        st.info("The run is still training; its metrics appear when it ends.", icon=":material/hourglass_top:")
        st.stop()
    st.warning("This run ended before its model was evaluated.", icon=":material/warning:")
    if st.button("Evaluate now", key="evaluate_now", type="primary"):
        try:
            with st.spinner("Evaluating the model on the run's validation and test images…"):
                evaluate_run(run, save=True)  # the run's own split, from its splits.csv
        except TLToolsError as error:
            show_error(error)
        else:
            st.rerun()
    st.stop()

splits = [split for split in SPLIT_TITLES if metrics.get(split)]
for tab, split in zip(st.tabs([SPLIT_TITLES[split] for split in splits]), splits):
    with tab:
        show_split(run, split, metrics[split])

st.page_link("pages/predict.py", label="Next: classify new images with this model", icon=":material/arrow_forward:")
