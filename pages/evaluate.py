"""Evaluate page: metrics, confusion matrix and misclassified images (built out with the training engine issue)."""

import streamlit as st

st.title("Evaluate")
st.info("Here you will see a trained model's accuracy, confusion matrix, per-class metrics and Grad-CAM views.")
