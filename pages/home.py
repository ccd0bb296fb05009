"""Home page: what the app does in five steps, and a one-click start with the built-in sample dataset."""

import streamlit as st

from tltools import app_state
from tltools.data import load_dataset
from tltools.data.sample import PER_CLASS, sample_digits_dataset
from tltools.errors import TLToolsError
from tltools.streamlit_bridge import config, require_app, show_error

require_app()

STEPS = [
    ("pages/dataset.py", "1. Dataset", ":material/folder_zip:",
     "Upload a zip of images, one folder per class. Every image is checked, problems are reported, "
     "and part of each class is kept aside for validation."),
    ("pages/model.py", "2. Model", ":material/account_tree:",
     "Pick a pretrained backbone, add a small head for your classes and choose how much of the "
     "backbone fine-tuning may change."),
    ("pages/train.py", "3. Train", ":material/monitoring:",
     "Train the head on the frozen backbone, then optionally fine-tune, with loss and accuracy "
     "charts updating live."),
    ("pages/evaluate.py", "4. Evaluate", ":material/fact_check:",
     "See accuracy per class, the confusion matrix, the images the model gets wrong and where it looks."),
    ("pages/predict.py", "5. Predict", ":material/image_search:",
     "Classify new images, and download the trained model (.keras, TFLite, …) from the Runs page."),
]

st.title("Teach a pretrained model your own image classes")
st.write(
    "**Transfer learning** reuses a network trained on millions of ImageNet photos: only a small new "
    "classifier is trained on your images, so a few dozen pictures per class and a laptop CPU are enough."
)

for column, (page, title, icon, text) in zip(st.columns(len(STEPS)), STEPS):
    with column.container(border=True):
        st.page_link(page, label=title, icon=icon)
        st.caption(text)

st.subheader("No data at hand?")
st.write(
    f"Try it with handwritten digits: {PER_CLASS} small greyscale images of each digit 0–9 from "
    "scikit-learn's bundled copy of the UCI digits data set."
)
if st.button("Try it with sample data", type="primary", icon=":material/play_arrow:", key="home_sample"):
    try:
        with st.spinner("Preparing the sample digits…"):
            folder = sample_digits_dataset()
            st.session_state[app_state.DATASET] = load_dataset(folder, split=config())  # the config's split
            st.session_state[app_state.DATASET_ORIGIN] = str(folder)
    except TLToolsError as error:
        show_error(error)
    else:
        st.switch_page("pages/dataset.py")
