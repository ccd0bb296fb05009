"""Predict page: classify new images with a run's model or your own .keras file."""

import hashlib
from pathlib import Path

import streamlit as st

from tltools import app_state
from tltools.charts.evaluation import top_k_figure
from tltools.errors import TLToolsError
from tltools.evaluation import gradcam
from tltools.prediction import Unreadable, predict_images, predictions_csv, predictions_table
from tltools.streamlit_bridge import cached_model, require_app, run_picker, save_uploaded_model, show_error

require_app()

IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]
DETAILED = 24
SHOWN_RANKS = 3  # the results table names this many classes per image (runners-up as text); the rest on demand
FROM_RUN, FROM_FILE = "A training run", "My own .keras file"

st.title("Predict")

source = st.radio("Model", [FROM_RUN, FROM_FILE], horizontal=True, key="predict_model_source")
if source == FROM_RUN:
    model_path = run_picker("predict_run", none_message="No run has a model yet: train one on the Train page, "
                            "or upload your own .keras file.").model_path
else:
    upload = st.file_uploader("Keras model saved by tltools (.keras)", type=["keras"], key="predict_model_upload")
    if upload is not None:
        try:
            st.session_state[app_state.UPLOADED_MODEL] = str(save_uploaded_model(upload))
        except TLToolsError as error:
            show_error(error)
            st.session_state[app_state.UPLOADED_MODEL] = None
    if st.session_state[app_state.UPLOADED_MODEL] is None:
        st.stop()
    model_path = Path(st.session_state[app_state.UPLOADED_MODEL])
try:
    model, class_names, _ = cached_model(model_path)
except TLToolsError as error:
    show_error(error)
    if source == FROM_FILE:
        model_path.unlink(missing_ok=True)
        st.session_state[app_state.UPLOADED_MODEL] = None
    st.stop()
st.caption(f"{len(class_names)} classes ({', '.join(class_names[:8])}{', …' if len(class_names) > 8 else ''}), "
           f"{model.input_shape[1]} px input")

images = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key="predict_images")
if st.toggle("Take a photo", key="predict_use_camera"):
    photo = st.camera_input("Photo", key="predict_camera")
    images = [*images, *([photo] if photo is not None else [])]
left, right = st.columns(2)
top_k = left.slider("Classes per image", 1, max(2, min(10, len(class_names))), min(5, len(class_names)),
                    key="predict_top_k")
tta = right.checkbox("Flip TTA: average with the mirrored image", key="predict_tta")

def next_link() -> None:
    """The page's last line: where to go next."""
    st.page_link("pages/runs.py", label="Next: download this model on the Runs page", icon=":material/arrow_forward:")


if not images:
    next_link()
    st.stop()
unique, repeated = {}, []
for image in images:  # the same picture added twice (or uploaded and photographed) is classified once
    digest = hashlib.sha1(image.getvalue()).hexdigest()
    if digest in unique:
        repeated.append(image.name)
    else:
        unique[digest] = image
images = list(unique.values())
if repeated:
    st.info(f"{len(repeated)} file(s) repeat an image already added and are shown once: {', '.join(repeated[:5])}"
            f"{', …' if len(repeated) > 5 else ''}.", icon=":material/content_copy:")

with st.spinner(f"Classifying {len(images)} image(s)…"):  # in batches; an unreadable file is reported alone
    outcomes = predict_images(model, class_names, images, top_k=top_k, tta_flip=tta, skip_unreadable=True)
results = []
for image, outcome in zip(images, outcomes):
    if isinstance(outcome, Unreadable):
        show_error(TLToolsError(f"{image.name}: {outcome.reason}"))
    else:
        results.append((image, outcome))
if not results:
    st.stop()

predictions = [prediction for _, prediction in results]
table = predictions_table(predictions)
st.subheader("Results")
compact = table[["image", "predicted", "confidence"]]
if top_k > 1:  # the runners-up as one short text column: no sideways scrolling, even on a phone
    compact = compact.assign(**{"next likely": [", ".join(f"{item['label']} {item['prob']:.0%}"
                                                           for item in p.top[1:SHOWN_RANKS]) for p in predictions]})
st.dataframe(compact, hide_index=True, key="predict_results",
             column_config={"confidence": st.column_config.NumberColumn(format="percent")})
with st.expander(f"Every rank as columns ({top_k} per image; as in the CSV)"):
    shares = {column: st.column_config.NumberColumn(format="percent")
              for column in table if column.endswith(("prob", "confidence"))}
    st.dataframe(table, hide_index=True, column_config=shares, key="predict_results_all")
st.download_button("Download CSV", predictions_csv(table), "predictions.csv", "text/csv",
                   key="predict_download", on_click="ignore", icon=":material/download:")

st.subheader("Per image")
if len(results) > DETAILED:
    st.caption(f"The first {DETAILED} of {len(results)} images; the table above has all of them.")
for image, prediction in results[:DETAILED]:
    with st.container(border=True):
        picture, chart = st.columns([1, 2])  # side by side when wide, stacked on a phone
        shown = image.getvalue()
        if chart.toggle("Grad-CAM: where the model looked", key=f"predict_gradcam_{image.file_id}"):
            try:
                with st.spinner("Computing Grad-CAM…"):
                    shown = gradcam(model, image.getvalue()).overlay
            except TLToolsError as error:
                with chart:
                    show_error(error)
        picture.image(shown, caption=image.name, width=220)
        chart.plotly_chart(top_k_figure(prediction), key=f"predict_chart_{image.file_id}")

next_link()
