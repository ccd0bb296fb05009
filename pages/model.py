"""Model page: backbone choice, head options and the freezing slider (built out with the backbones issue)."""

import streamlit as st

st.title("Model")
st.info("Here you will pick a pretrained backbone, set the classifier head and choose how many base layers to unfreeze.")
