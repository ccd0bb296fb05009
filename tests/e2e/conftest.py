"""Fixtures of the real-browser test: Debian's Chromium driven by Playwright, and the app served by Streamlit.

The server runs ``streamlit run app.py`` from the repository root with the
session's temporary ``TLTOOLS_HOME`` / ``TLTOOLS_CACHE`` (set by
``tests/conftest.py``), on a free port. Its output and the screenshots go to
``test-artifacts/`` at the repository root.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SERVER_START_SECONDS = 60


def _skip(reason: str):
    print(f"\nSKIPPED: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored), with an emptied ``screenshots/`` folder."""
    screenshots = ARTIFACTS / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    for old in screenshots.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless; skips (with the reason printed) when it is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _skip(f"playwright is not installed ({error}); `pip install -r requirements-dev.txt` installs it")
    if not CHROMIUM.is_file():
        _skip(f"no Chromium at {CHROMIUM}: install Debian's package as root with "
              "`apt-get update && apt-get install -y --no-install-recommends chromium` (.ci/run does this)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode().strip() == "ok"
    except OSError:
        return False


def _stop(server: subprocess.Popen) -> None:
    """End the server and everything it started (its own process group)."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


@pytest.fixture
def app_url(artifacts) -> str:
    """Serve app.py on a free port for one test and return its URL; the log is ``test-artifacts/streamlit-server.log``."""
    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
               # Watching the repository (.venv included) costs the server CPU and reruns pages mid-test.
               "--server.fileWatcherType", "none"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # TLTOOLS_HOME / TLTOOLS_CACHE: the session's temp folders
    log_path = artifacts / "streamlit-server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(f"{url}/_stcore/health"):
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with status {server.returncode} before serving; see {log_path}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer {url}/_stcore/health within {SERVER_START_SECONDS} s; "
                            f"see {log_path}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)
