"""tltools web app: the router. Each page lives in pages/ and delegates its work to tltools."""

import streamlit as st

from tltools.streamlit_bridge import init_state, sidebar_summary

st.set_page_config(page_title="tltools: transfer learning", page_icon=":material/model_training:", layout="wide")
init_state()

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/folder_zip:"),
        st.Page("pages/model.py", title="Model", icon=":material/account_tree:"),
        st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
    ]
)
summary = st.sidebar.empty()
sidebar_summary(summary)  # shown even when the page ends early with st.stop()
navigation.run()
sidebar_summary(summary)  # redrawn with what the page just changed
