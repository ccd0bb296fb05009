"""Predict page: classify new images with a trained model (built out with the training engine issue)."""

import streamlit as st

st.title("Predict")
st.info("Here you will upload new images and get the trained model's top predictions.")
