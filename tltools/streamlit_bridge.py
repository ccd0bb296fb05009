"""The one place where tltools meets Streamlit: session defaults, error display, sidebar.

Pages import this module; the rest of tltools never imports Streamlit.
"""

import streamlit as st

from tltools import app_state
from tltools.errors import TLToolsError


def init_state() -> None:
    """Give every session-state key of :mod:`tltools.app_state` its default when missing."""
    for key, value in app_state.DEFAULTS.items():
        st.session_state.setdefault(key, value)


def show_error(error: TLToolsError) -> None:
    """Show a project error as one ``st.error`` line (never a traceback)."""
    st.error(str(error), icon=":material/error:")


def sidebar_summary() -> None:
    """Show the current dataset in the sidebar on every page."""
    dataset = st.session_state.get(app_state.DATASET)
    with st.sidebar:
        st.caption("Current dataset")
        if dataset is None:
            st.write("none loaded yet")
        else:
            st.write(f"**{dataset.source}**  \n{len(dataset.items)} images, {len(dataset.classes)} classes")
