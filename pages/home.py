"""Home page: what the app does in five steps, and a one-click start with the built-in sample dataset."""

import streamlit as st

from tltools.data import load_dataset
from tltools.data.sample import (
    PER_CLASS,
    RECOMMENDED_TIME_BUDGET_S,
    describe_sample,
    recommended_config,
    sample_digits_dataset,
)
from tltools.errors import TLToolsError
from tltools import app_state
from tltools.streamlit_bridge import config, remember_session, require_app, set_dataset, show_error

require_app()

STEPS = [
    ("pages/dataset.py", "1. Dataset", ":material/folder_zip:",
     "Upload a zip of images, one folder per class. Every image is checked, problems are reported, "
     "and part of each class is kept aside for validation."),
    ("pages/model.py", "2. Model", ":material/account_tree:",
     "Pick a pretrained backbone, add a small head for your classes and choose how much of the "
     "backbone fine-tuning may change."),
    ("pages/train.py", "3. Train", ":material/monitoring:",
     "Let tltools find the best model within a time budget, or set it yourself: the head on the frozen "
     "backbone, then optionally fine-tuning, with charts updating live."),
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

with st.container(horizontal=True):  # the cards wrap onto more rows in a narrow window
    for page, title, icon, text in STEPS:
        with st.container(border=True, width=200):
            st.page_link(page, label=title, icon=icon)
            st.caption(text)

st.subheader("No data at hand?")
st.write(
    f"Try it with handwritten digits: {PER_CLASS} images of each digit 0–9 from scikit-learn's bundled copy of "
    "the UCI digits data set."
)
st.caption(describe_sample() + " Loading the sample sets both up for you.")
if st.button("Try it with sample data", type="primary", icon=":material/play_arrow:", key="home_sample"):
    try:
        with st.spinner("Preparing the sample digits…"):
            folder = sample_digits_dataset()
            set_dataset(load_dataset(folder, split=config()), str(folder))  # the config's split
            # The path that suits the sample: auto mode's recommended budget, or a short fine-tune by hand.
            st.session_state[app_state.AUTO_BUDGET_S] = int(RECOMMENDED_TIME_BUDGET_S)
            st.session_state[app_state.CONFIG] = recommended_config(
                **config().model_dump(exclude={"fine_tune_epochs", "fine_tune_learning_rate"}))
            remember_session()
    except TLToolsError as error:
        show_error(error)
    else:
        st.switch_page("pages/dataset.py")

st.page_link("pages/dataset.py", label="Next: upload your dataset", icon=":material/arrow_forward:")
