"""Every ``st.session_state`` key the app uses, with its default, in one place.

Pages read and write session state only through these names, so a new page
cannot silently invent a key that another page misspells. This module does
not import Streamlit; :func:`tltools.streamlit_bridge.init_state` applies the
defaults.
"""

# The loaded tltools.data.Dataset, or None before an upload.
DATASET = "dataset"
# Identifies what DATASET was loaded from (an upload's file id or a folder), to avoid reloading on reruns.
DATASET_ORIGIN = "dataset_origin"

DEFAULTS = {
    DATASET: None,
    DATASET_ORIGIN: None,
}
