"""Every ``st.session_state`` key the app uses, with its default, in one place.

Pages read and write session state only through these names, so no page
invents a key another page misspells. This module does not import Streamlit;
:func:`tltools.streamlit_bridge.init_state` applies the defaults. Defaults are
factories, so every session gets its own objects.
"""

import collections
import copy
import re
import threading
import time
import uuid

from tltools.training import TrainConfig

# Identifies this browser session (owner of its training jobs).
SESSION_ID = "session_id"
# The loaded tltools.data.Dataset, or None before an upload.
DATASET = "dataset"
# What DATASET was loaded from (an upload's file id or a folder), to avoid reloading on reruns.
DATASET_ORIGIN = "dataset_origin"
# The upload that failed last and why, ``(origin, message)``, or None: while that file is selected
# the Dataset page shows only the error and which dataset is still loaded.
FAILED_UPLOAD = "dataset_failed_upload"
# The TrainConfig being put together: Dataset page (split, augmentation), Model page
# (backbone, weights, head, unfreeze), Train page (learning rates, epochs, ...). It is the one
# holder of the split settings: DATASET is always split as it says (Dataset.with_splits).
CONFIG = "train_config"
# The Train page's time budget for auto mode ("Find the best model"), in seconds.
AUTO_BUDGET_S = "auto_budget_s"
# The id of this session's latest training job (also in the URL as ?job=...).
JOB_ID = "job_id"
# A run to continue training from (set by "continue training" on the Runs page), or None.
FROM_RUN = "from_run"
# The latest tltools.training.LRFinderResult, or None.
LR_FINDER = "lr_finder"
# The (config, dataset fingerprint) the LR finder result was made under: a result made under other
# settings is marked stale.
LR_FINDER_MADE_UNDER = "lr_finder_made_under"
# The run folder the Evaluate and Predict pages use (a str), or None for the latest.
SELECTED_RUN = "selected_run"
# A user's own uploaded .keras model file for the Predict page (a str path), or None.
UPLOADED_MODEL = "uploaded_model"
# The Data health page: the latest tltools.health.HealthReport (of DATASET), its map coordinates, the
# analysis job this session follows (its id), the reviewer's decisions ({relpath: (action, new label,
# reason)}) and the "Retrain with fixes" job ({"job": id, "before": run folder}), each None or empty until made.
HEALTH_REPORT = "health_report"
HEALTH_MAP = "health_map"
HEALTH_JOB = "health_job"
HEALTH_DECISIONS = "health_decisions"
HEALTH_RETRAIN = "health_retrain"

DEFAULTS = {
    SESSION_ID: lambda: uuid.uuid4().hex,
    DATASET: lambda: None,
    DATASET_ORIGIN: lambda: None,
    FAILED_UPLOAD: lambda: None,
    CONFIG: TrainConfig,
    AUTO_BUDGET_S: lambda: 600,
    JOB_ID: lambda: None,
    FROM_RUN: lambda: None,
    LR_FINDER: lambda: None,
    LR_FINDER_MADE_UNDER: lambda: None,
    SELECTED_RUN: lambda: None,
    UPLOADED_MODEL: lambda: None,
    HEALTH_REPORT: lambda: None,
    HEALTH_MAP: lambda: None,
    HEALTH_JOB: lambda: None,
    HEALTH_DECISIONS: dict,
    HEALTH_RETRAIN: lambda: None,
}

# The query parameter that carries the job id, so a refreshed page reattaches to its run.
JOB_QUERY_PARAM = "job"
# The query parameter that carries the session's token: a reload or a new tab with the same URL
# gets the session's dataset and settings back from the server's SessionStore.
SESSION_QUERY_PARAM = "session"
# What a reloaded session gets back: the dataset, every setting, the LR finder result and the job.
PERSISTED = (DATASET, DATASET_ORIGIN, CONFIG, AUTO_BUDGET_S, LR_FINDER, LR_FINDER_MADE_UNDER, JOB_ID,
             FROM_RUN, SELECTED_RUN)
_TOKEN = re.compile(r"[0-9a-f]{32}")


def valid_token(value) -> bool:
    """True when ``value`` looks like a session token this app made (32 hex digits), so a URL cannot pick any key."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


class SessionStore:
    """The server's record of each browser session's state, keyed by the token in the URL.

    Streamlit forgets a session's state on reload; the app saves the
    :data:`PERSISTED` values here after every change and reads them back when a
    page opens with a known token. Values are kept by reference and handed out
    as deep copies, so two tabs of one session never share mutable objects.
    Only the ``max_sessions`` most recently saved sessions are kept, and none
    idle longer than ``max_idle_s`` (a kept dataset holds its extracted upload's
    lease, :mod:`tltools.housekeeping`, so forgotten sessions let it be cleaned).

    Args:
        max_sessions: Sessions kept (least recently saved dropped first).
        max_idle_s: Seconds since its last save after which a session is forgotten.
        clock: Time source (tests pass their own).
    """

    def __init__(self, max_sessions: int = 256, max_idle_s: float = 12 * 3600, clock=time.monotonic):
        self.max_sessions = max_sessions
        self.max_idle_s = max_idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._records: collections.OrderedDict[str, tuple[float, dict]] = collections.OrderedDict()

    def save(self, token: str, values: dict) -> None:
        """Record ``values`` (a subset of :data:`PERSISTED`) for ``token``."""
        with self._lock:
            now = self._clock()
            self._records[token] = (now, {key: values[key] for key in PERSISTED if key in values})
            self._records.move_to_end(token)
            while self._records and (len(self._records) > self.max_sessions
                                     or now - next(iter(self._records.values()))[0] > self.max_idle_s):
                self._records.popitem(last=False)

    def restore(self, token: str) -> dict | None:
        """Return deep copies of what was saved for ``token``, or None for an unknown or long idle token."""
        with self._lock:
            saved_at, record = self._records.get(token, (None, None))
            if record is None or self._clock() - saved_at > self.max_idle_s:
                return None
            return copy.deepcopy(record)
