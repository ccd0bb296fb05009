"""tltools web app: the router. Each page lives in pages/ and delegates its work to tltools."""

from pathlib import Path

import streamlit as st

from tltools.errors import TLToolsError
from tltools.streamlit_bridge import init_state, job_manager, sidebar_summary

# A local file: a Material or emoji icon would make the browser fetch the tab icon from a font host or CDN.
ICON = Path(__file__).resolve().parent / "assets" / "icon.png"
# From 800 px down the sidebar takes less room and the page's side padding shrinks, so charts, tables and
# metrics keep their width; on a phone Streamlit hides the sidebar behind its menu button.
NARROW_CSS = """<style>
@media (max-width: 1000px) {
  [data-testid="stSidebar"][data-collapsed="false"] { width: 200px !important; min-width: 200px !important; }
  [data-testid="stMainBlockContainer"] { padding-left: 1rem; padding-right: 1rem; }
}
</style>"""

st.set_page_config(page_title="tltools: transfer learning", page_icon=str(ICON), layout="wide")
st.html(NARROW_CSS)
try:
    job_manager()  # TLTOOLS_* settings and, with TLTOOLS_RAY_ADDRESS, Ray: one line when unusable, not a traceback
except TLToolsError as error:
    st.error(str(error), icon=":material/error:")
    st.stop()
init_state()

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/folder_zip:"),
        st.Page("pages/health.py", title="Data health", icon=":material/health_and_safety:"),
        st.Page("pages/model.py", title="Model", icon=":material/account_tree:"),
        st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
        st.Page("pages/deploy.py", title="Distill & adapt", icon=":material/compress:"),
    ]
)
summary = st.sidebar.empty()
sidebar_summary(summary)  # shown even when the page ends early with st.stop()
navigation.run()
sidebar_summary(summary)  # redrawn with what the page just changed
