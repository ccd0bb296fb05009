"""Fixtures shared by every test: isolated tltools folders and the shared real dataset.

Factories for tiny generated images and archives are in :mod:`tests.factories`.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FLOWERS12 = SHARED / "datasets" / "flowers12"

_hostile_outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
# A test not marked ``slow`` that takes longer than this (setup + call) is named at the end of the run.
FAST_TIER_LIMIT_S = 5.0
_fast_tier_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Record the outcome of every test marked ``hostile`` (one hostile input each) and each fast test's time."""
    if "hostile" in report.keywords and (report.when == "call" or report.outcome != "passed"):
        _hostile_outcomes[report.outcome].append(report.nodeid)
    if "slow" not in report.keywords and report.when in ("setup", "call"):
        _fast_tier_seconds[report.nodeid] = _fast_tier_seconds.get(report.nodeid, 0.0) + report.duration


def pytest_collection_modifyitems(items):
    """Mark ``slow`` every case of a test parametrized over backbones (a spec or a registered name) but the default's.

    Building a large backbone takes seconds; the default one keeps each such test in the fast tier.
    """
    from tltools.backbones import BackboneSpec, list_backbones

    default, *others = [spec.name for spec in list_backbones()]
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {}).values()
        names = {value.name if isinstance(value, BackboneSpec) else value for value in params
                 if isinstance(value, (BackboneSpec, str))}
        if names & set(others):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """End the run with the fast tests that took too long, and one line counting the hostile inputs tried and handled."""
    too_slow = sorted((seconds, nodeid) for nodeid, seconds in _fast_tier_seconds.items()
                      if seconds > FAST_TIER_LIMIT_S)
    if too_slow:
        terminalreporter.write_line(f"tests not marked slow that took over {FAST_TIER_LIMIT_S:.0f} s "
                                    f"(mark them @pytest.mark.slow to keep `-m 'not slow'` fast):")
        for seconds, nodeid in reversed(too_slow):
            terminalreporter.write_line(f"  {seconds:5.1f} s  {nodeid}")
    tried = len(set(sum(_hostile_outcomes.values(), [])))
    if tried:
        handled = len(set(_hostile_outcomes["passed"]) - set(_hostile_outcomes["failed"]))
        terminalreporter.write_line(
            f"hostile inputs: {tried} tried, {handled} handled (clear error or reported skip), "
            f"{len(set(_hostile_outcomes['failed']))} not handled, {len(set(_hostile_outcomes['skipped']))} skipped")


@pytest.fixture(scope="session", autouse=True)
def _isolated_tltools_folders(tmp_path_factory):
    """Point TLTOOLS_HOME (runs, datasets) and TLTOOLS_CACHE at temp folders for the whole run; jobs on threads.

    The cache folder is shared by all tests so a converted backbone is converted once per run.
    """
    home = tmp_path_factory.mktemp("tltools-home")
    cache = tmp_path_factory.mktemp("tltools-cache")
    saved = {key: os.environ.get(key) for key in ("TLTOOLS_HOME", "TLTOOLS_CACHE", "TLTOOLS_JOB_PROCESSES")}
    os.environ["TLTOOLS_HOME"] = str(home)
    os.environ["TLTOOLS_CACHE"] = str(cache)
    # Page tests train on threads of the test process (a worker process imports TensorFlow again);
    # tests/test_worker_processes.py and the browser tests cover the app's worker processes.
    os.environ["TLTOOLS_JOB_PROCESSES"] = "0"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def flowers12() -> Path:
    """The real 12-class flower dataset in ../shared; tests using it skip when it is absent."""
    if not FLOWERS12.is_dir():
        pytest.skip(f"real dataset not found at {FLOWERS12} (../shared is absent); skipping tests that need it")
    return FLOWERS12


@pytest.fixture(scope="session")
def colours_dir(tmp_path_factory):
    """Three learnable colour classes (red, green, blue), 10 images each, in class folders."""
    from tests.factories import COLOURS, colour_images, write_tree

    return write_tree(tmp_path_factory.mktemp("colours"), colour_images(COLOURS, 10, seed=0))


@pytest.fixture(scope="session")
def colours(colours_dir):
    """The colour dataset loaded, 30 % validation."""
    from tltools.data import load_dataset

    return load_dataset(colours_dir, val_fraction=0.3, seed=0)
