"""tltools web app: the router. Each page lives in pages/ and delegates its work to tltools."""

import streamlit as st

from tltools.streamlit_bridge import init_state, sidebar_summary

st.set_page_config(page_title="tltools: transfer learning", page_icon=":material/model_training:", layout="wide")
init_state()

navigation = st.navigation(
    [
        st.Page("pages/dataset.py", title="Dataset", icon=":material/folder_zip:", default=True),
        st.Page("pages/model.py", title="Model", icon=":material/account_tree:"),
        st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
    ]
)
sidebar_summary()
navigation.run()
