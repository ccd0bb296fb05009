"""Every ``st.session_state`` key the app uses, with its default, in one place.

Pages read and write session state only through these names, so no page
invents a key another page misspells. This module does not import Streamlit;
:func:`tltools.streamlit_bridge.init_state` applies the defaults. Defaults are
factories, so every session gets its own objects.
"""

import uuid

from tltools.training import TrainConfig

# Identifies this browser session (owner of its training jobs).
SESSION_ID = "session_id"
# The loaded tltools.data.Dataset, or None before an upload.
DATASET = "dataset"
# What DATASET was loaded from (an upload's file id or a folder), to avoid reloading on reruns.
DATASET_ORIGIN = "dataset_origin"
# The TrainConfig being put together: Dataset page (split, augmentation), Model page
# (backbone, weights, head, unfreeze), Train page (learning rates, epochs, ...). It is the one
# holder of the split settings: DATASET is always split as it says (Dataset.with_splits).
CONFIG = "train_config"
# The id of this session's latest training job (also in the URL as ?job=...).
JOB_ID = "job_id"
# A run to continue training from (set by "continue training" on the Runs page), or None.
FROM_RUN = "from_run"
# The latest tltools.training.LRFinderResult, or None.
LR_FINDER = "lr_finder"
# The run folder the Evaluate and Predict pages use (a str), or None for the latest.
SELECTED_RUN = "selected_run"
# A user's own uploaded .keras model file for the Predict page (a str path), or None.
UPLOADED_MODEL = "uploaded_model"

DEFAULTS = {
    SESSION_ID: lambda: uuid.uuid4().hex,
    DATASET: lambda: None,
    DATASET_ORIGIN: lambda: None,
    CONFIG: TrainConfig,
    JOB_ID: lambda: None,
    FROM_RUN: lambda: None,
    LR_FINDER: lambda: None,
    SELECTED_RUN: lambda: None,
    UPLOADED_MODEL: lambda: None,
}

# The query parameter that carries the job id, so a refreshed page reattaches to its run.
JOB_QUERY_PARAM = "job"
