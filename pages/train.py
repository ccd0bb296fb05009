"""Train page: learning-rate slider, epochs and live charts (built out with the training engine issue)."""

import streamlit as st

st.title("Train")
st.info("Here you will set the learning rate and epochs, start training and watch live loss and accuracy charts.")
