"""The one place where tltools meets Streamlit.

Session-state defaults, the process-wide training job manager, cached model
loading, the current training config, error display and the sidebar. Pages
import this module; the rest of tltools never imports Streamlit. Streamlit is
only ever called from the script thread: training threads write into a
:class:`~tltools.training.TrainingLog` that pages read.
"""

import copy
import hashlib
import sys
from pathlib import Path

import streamlit as st

from tltools import app_state, fileio, paths, runs
from tltools.backbones import create_backbone
from tltools.data.uploads import display_name
from tltools.errors import TLToolsError
from tltools.jobs import JobManager
from tltools.settings import Settings
from tltools.model import build_imagenet_classifier, build_model, load_model
from tltools.training import TrainConfig
from tltools.untrusted import check_model_size, short


def _keep_keras_state_between_reruns() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit does that (``_clean_problem_modules`` in its script runner) for
    scripts that build a model on each rerun. Here models are built once and
    cached, and training runs on a background thread while the Train page
    refreshes every second: clearing the session on each refresh reset Keras'
    global state under the running ``fit`` and made training 2-4x slower.
    Streamlit's other cleanup (closing matplotlib figures) is kept.
    """
    from streamlit.runtime.scriptrunner import script_runner

    def close_matplotlib_figures() -> None:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    script_runner._clean_problem_modules = close_matplotlib_figures


_keep_keras_state_between_reruns()


def init_state() -> None:
    """Give every session-state key its default, restore a reloaded session, and reattach to a job.

    A refreshed page (or a new tab opened with the same URL) loses its session
    state but keeps its URL: the session token in the query string
    (``?session=``) brings back the dataset, settings, LR finder result and job
    the server recorded for it (:class:`tltools.app_state.SessionStore`), and
    the job id (``?job=``) reattaches to a running or finished job. A job id in
    the URL that differs from the session's (a link to another run's live
    view, e.g. from the Runs page) makes that job the session's.
    """
    fresh = app_state.SESSION_ID not in st.session_state
    for key, factory in app_state.DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = factory()
    token = st.query_params.get(app_state.SESSION_QUERY_PARAM)
    if fresh and app_state.valid_token(token):
        st.session_state[app_state.SESSION_ID] = token  # the same owner of the same jobs
        record = session_store().restore(token)
        for key, value in (record or {}).items():
            st.session_state[key] = value
    if token != st.session_state[app_state.SESSION_ID]:
        st.query_params[app_state.SESSION_QUERY_PARAM] = st.session_state[app_state.SESSION_ID]
    job_id = st.query_params.get(app_state.JOB_QUERY_PARAM)
    if job_id and job_id != st.session_state[app_state.JOB_ID]:
        job = job_manager().get(job_id)
        if job is not None:
            _attach(job)
    remember_session()


@st.cache_resource
def session_store() -> app_state.SessionStore:
    """Return the server's one record of every browser session's dataset and settings."""
    return app_state.SessionStore()


def remember_session() -> None:
    """Record this session's dataset, settings, LR finder result and job, so a reload gets them back."""
    session_store().save(st.session_state[app_state.SESSION_ID],
                         {key: st.session_state[key] for key in app_state.PERSISTED})


def set_dataset(dataset, origin: str | None) -> None:
    """Make ``dataset`` (loaded from ``origin``: an upload's id or a folder) the session's dataset and record it."""
    st.session_state[app_state.DATASET] = dataset
    st.session_state[app_state.DATASET_ORIGIN] = origin
    remember_session()


def dataset_name(dataset) -> str:
    """The name the user knows ``dataset`` by (the uploaded file's name), never a server path."""
    return display_name(dataset.source, dataset.root)


def _attach(job) -> None:
    """Make ``job`` the session's job; a session without a dataset also gets copies of the job's data and settings.

    A refreshed or newly opened tab starts with nothing loaded; with the job's
    dataset and settings its Train page shows the run and can start the next
    one. Copies, so that nothing this session changes reaches the job or the
    session that submitted it. A session with its own dataset keeps it.
    """
    st.session_state[app_state.JOB_ID] = job.job_id
    if st.session_state[app_state.DATASET] is not None:
        return
    dataset = job.dataset
    if dataset is None:  # a finished job has let go of its data: read it back as the run recorded it
        try:
            dataset = runs.load_run_dataset(runs.read_run(job.run_dir))
        except TLToolsError:
            return
    st.session_state[app_state.DATASET] = copy.deepcopy(dataset)
    st.session_state[app_state.DATASET_ORIGIN] = str(dataset.root)
    st.session_state[app_state.CONFIG] = copy.deepcopy(job.config)
    remember_session()


def require_app() -> None:
    """Make sure a page runs inside ``app.py`` (its router, session defaults and sidebar).

    On a fresh server Streamlit treats a folder named ``pages/`` as a legacy
    multipage app until the first ``st.navigation`` call, so a first request
    for a page's URL runs that page file alone, without ``app.py``
    (``PagesManager.uses_pages_directory``; ``st.navigation`` itself clears
    the flag). Clear it here and rerun: the same URL then runs through
    ``app.py``, which opens the requested page. Every page calls this first.
    """
    if app_state.SESSION_ID in st.session_state:
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


@st.cache_resource
def job_manager() -> JobManager:
    """Return the server's one job manager (shared by all sessions).

    ``TLTOOLS_MAX_CONCURRENT_JOBS`` (default 1) sets how many jobs train at once.

    Raises:
        TLToolsError: The variable is not a whole number >= 1.
    """
    return JobManager(max_concurrent=Settings.from_env().max_concurrent_jobs)


def current_job():
    """Return this session's latest training job, or None."""
    return job_manager().get(st.session_state[app_state.JOB_ID])


def remember_job(job_id: str) -> None:
    """Make ``job_id`` this session's job and put it in the URL; the Evaluate and Predict pages then default to its run."""
    st.session_state[app_state.JOB_ID] = job_id
    st.session_state[app_state.SELECTED_RUN] = None
    st.query_params[app_state.JOB_QUERY_PARAM] = job_id
    remember_session()


def config() -> TrainConfig:
    """Return the training config this session is putting together."""
    return st.session_state[app_state.CONFIG]


def update_config(**changes) -> TrainConfig:
    """Replace settings of the session's config (validated) and return the new config.

    Raises:
        TLToolsError: A changed setting is out of range.
    """
    updated = config().replace(**changes)
    st.session_state[app_state.CONFIG] = updated
    remember_session()
    return updated


@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def _load_model(path: str, modified: float):
    return load_model(path)


def cached_model(path: str | Path):
    """Load a model file or run folder once per file version: ``(model, class_names, metadata)``.

    Raises:
        TLToolsError: The file is missing or not a loadable Keras model.
    """
    path = Path(path)
    file = path / runs.MODEL_FILE if path.is_dir() else path
    if not file.is_file():
        raise TLToolsError(f"no model file at {file}")
    return _load_model(str(file.resolve()), file.stat().st_mtime)


@st.cache_resource(max_entries=2, show_spinner="Loading the backbone's ImageNet classifier…")
def imagenet_classifier(backbone: str):
    """Return the backbone with its own ImageNet head (what the base "sees"), built once per name."""
    return build_imagenet_classifier(backbone)


def own_run_id() -> str | None:
    """Return the run id (folder name) of this session's latest training job, or None."""
    job = current_job()
    return None if job is None else job.run_dir.name


def run_picker(key: str, *, none_message: str) -> runs.RunInfo:
    """Choose among the runs that have a model, newest first, each shown with its validation accuracy.

    The choice is shared by the pages. Until the session picks one, it is the
    best run (highest validation accuracy) on the session's loaded dataset;
    without one, the session's own latest run when that has a model (other
    sessions may have trained newer ones), else the newest.

    Args:
        key: The selectbox's widget key.
        none_message: What to say (then stop the page) when no run has a model.

    Returns:
        The chosen run.
    """
    available = [run for run in runs.list_runs() if run.model_path.is_file()]
    if not available:
        st.info(none_message, icon=":material/info:")
        st.stop()
    paths = [str(run.path) for run in available]
    selected = st.session_state[app_state.SELECTED_RUN]
    dataset = st.session_state[app_state.DATASET]
    if selected not in paths and dataset is not None:  # the best run on the loaded data, not simply the latest
        best = runs.best_run(available, dataset.fingerprint)
        selected = None if best is None else str(best.path)
    if selected not in paths:
        selected = next((str(run.path) for run in available if run.run_id == own_run_id()), None)
    labels = {str(run.path): runs.picker_label(run) for run in available}
    choice = st.selectbox("Run", paths, index=paths.index(selected) if selected in paths else 0,
                          format_func=labels.get, key=key)
    st.session_state[app_state.SELECTED_RUN] = choice
    remember_session()
    return available[paths.index(choice)]


def show_error(error: Exception) -> None:
    """Show a project error as one ``st.error`` line; other errors also get their details in an expander."""
    st.error(str(error) or type(error).__name__, icon=":material/error:")
    if not isinstance(error, TLToolsError):
        with st.expander("Details"):
            st.exception(error)


def sidebar_summary(slot) -> None:
    """Show the current dataset, model choice and running/last job in ``slot`` (an ``st.sidebar.empty()``)."""
    dataset = st.session_state[app_state.DATASET]
    settings = config()
    job = current_job()
    with slot.container():
        st.caption("Dataset")
        st.write("none loaded yet" if dataset is None else
                 f"**{dataset_name(dataset)}**  \n{len(dataset.items)} images, {len(dataset.classes)} classes")
        st.caption("Model")
        st.write(f"**{settings.backbone}** ({settings.weights} weights)")
        st.caption("Training")
        if job is None:
            st.write("no run in this session")
        else:
            st.write(f"**{job.status}**  \n`{job.run_dir.name}`")


@st.cache_resource(max_entries=4, show_spinner="Building the model for the freezing preview…")
def preview_model(backbone: str, num_classes: int, input_size: int | None, pooling: str, dense_units: int,
                  dropout: float):
    """Return a transfer model with random weights, built once per settings and shared by all sessions.

    Only for read-only uses such as :func:`tltools.model.freezing.preview_unfreeze`:
    nothing may change its trainability or weights.

    Raises:
        TLToolsError: For an unknown backbone, an unusable size or bad head settings.
    """
    return build_model(backbone, num_classes, weights="none", input_size=input_size, pooling=pooling,
                       dense_units=dense_units, dropout=dropout)


def save_uploaded_weights(uploaded) -> Path:
    """Keep an uploaded weights file as ``<TLTOOLS_HOME>/weights/<name>-<content hash><suffixes>``, once per content.

    The hash keeps two different uploads of the same name (from two sessions)
    apart, so one session's upload never replaces the file another trains from.

    Raises:
        TLToolsError: The upload is larger than ``TLTOOLS_MAX_MODEL_BYTES``
            (checked before anything is written), or the disk refuses the write.
    """
    check_model_size(f"the uploaded weights file {short(uploaded.name)}", _upload_size(uploaded))
    return _keep_upload(uploaded, "weights", default_stem="weights", suffix="".join(Path(uploaded.name).suffixes[-2:]))


def save_uploaded_model(uploaded) -> Path:
    """Keep an uploaded model as ``<TLTOOLS_HOME>/uploaded_models/<name>-<content hash>.keras``, once per content.

    The hash keeps two different uploads of the same name (from two sessions)
    apart. The file is only kept, not trusted: :func:`cached_model` screens it
    when loading, and the page deletes it when that fails.

    Returns:
        The path of the kept file.

    Raises:
        TLToolsError: The upload is larger than ``TLTOOLS_MAX_MODEL_BYTES``
            (checked before anything is written), or the disk refuses the write.
    """
    check_model_size(f"the uploaded model {short(uploaded.name)}", _upload_size(uploaded))
    return _keep_upload(uploaded, "uploaded_models", default_stem="model", suffix=".keras")


def _keep_upload(uploaded, folder: str, *, default_stem: str, suffix: str) -> Path:
    """Write an upload once per content as ``<TLTOOLS_HOME>/<folder>/<safe stem>-<content hash><suffix>``."""
    content = uploaded.getvalue()
    name = Path(uploaded.name).name
    stem = name[: -len(suffix)] if suffix and name.endswith(suffix) else Path(name).stem
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60].lstrip("_")
    suffix = "".join(ch for ch in suffix if ch.isalnum() or ch == ".")[:20]
    digest = hashlib.sha256(content).hexdigest()[:10]
    target = paths.home_dir() / folder / f"{stem or default_stem}-{digest}{suffix}"
    if not target.is_file():
        _write_upload(target, content)
    return target


def _upload_size(uploaded) -> int:
    """Size in bytes of an uploaded file, without copying it when Streamlit already knows it."""
    size = getattr(uploaded, "size", None)
    return size if isinstance(size, int) else len(uploaded.getvalue())


def _write_upload(target: Path, data: bytes) -> None:
    """Write an upload atomically; a full or read-only disk becomes a one-line TLToolsError."""
    try:
        with fileio.atomic_path(target) as temporary:
            temporary.write_bytes(data)
    except OSError as error:
        if not fileio.is_disk_error(error):
            raise
        raise TLToolsError(fileio.disk_error_message(error, target)) from None


def check_weights_file(backbone: str, path: str | Path, input_size: int | None) -> None:
    """Build ``backbone`` from a weights file (once per file version) to check that the file fits.

    Raises:
        TLToolsError: The file is missing, not HDF5, or its arrays do not fit
            the backbone (the message lists expected and found shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise TLToolsError(f"weights file not found: {path}; upload it again")
    problem = _weights_problem(backbone, str(path.resolve()), input_size, path.stat().st_mtime)
    if problem is not None:
        raise TLToolsError(problem)


@st.cache_data(max_entries=16, show_spinner="Checking the weights file against the backbone…")
def _weights_problem(backbone: str, path: str, input_size: int | None, modified: float) -> str | None:
    try:
        create_backbone(backbone, weights=path, input_size=input_size)
    except TLToolsError as error:
        return str(error)
    return None
