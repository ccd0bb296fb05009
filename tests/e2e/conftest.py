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
import urllib.request
from pathlib import Path

import pytest

from tests.waiting import wait_until

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


class Server:
    """One ``streamlit run app.py`` subprocess, in its own process group.

    Attributes:
        process: The server process (its pid is also its process group's id).
        url: Where it serves, ``http://127.0.0.1:<port>``.
        log_path: The file its output goes to.
    """

    def __init__(self, log_path: Path, env: dict[str, str] | None = None):
        port = _free_port()
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                   "--server.address", "127.0.0.1", "--server.headless", "true",
                   "--browser.gatherUsageStats", "false",
                   # Watching the repository (.venv included) costs the server CPU and reruns pages mid-test.
                   "--server.fileWatcherType", "none"]
        # TLTOOLS_HOME / TLTOOLS_CACHE: the session's temp folders unless ``env`` says otherwise.
        # TLTOOLS_JOB_PROCESSES=1: the served app trains in worker processes, as it does by default.
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TLTOOLS_JOB_PROCESSES": "1", **(env or {})}
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

        def serving() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"streamlit exited with status {self.process.returncode} before serving; see {log_path}")
            return _healthy(f"{self.url}/_stcore/health")

        try:
            wait_until(serving, SERVER_START_SECONDS, f"streamlit did not answer {self.url}/_stcore/health; "
                                                      f"see {log_path}", interval=0.5)
        except AssertionError as error:
            self.stop()
            pytest.fail(str(error))

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash or the OOM killer would, and reap it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)  # reaped: no zombie left that still answers kill(pid, 0)

    def stop(self) -> None:
        """End the server and everything it started (its own process group)."""
        _stop(self.process)


@pytest.fixture
def start_server(artifacts):
    """Return ``start(name, **env)``: serve app.py on a free port and return the :class:`Server`.

    Its output goes to ``test-artifacts/<name>.log``; ``env`` adds or overrides
    environment variables (e.g. ``TLTOOLS_HOME``). Every server still running
    at the end of the test is stopped.
    """
    servers = []

    def start(name: str = "streamlit-server", **env: str) -> Server:
        log_path = artifacts / f"{name}.log"
        if all(server.log_path != log_path for server in servers):
            log_path.unlink(missing_ok=True)  # a fresh log per test; a restarted server appends to it
        servers.append(Server(log_path, env))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def app_url(start_server) -> str:
    """Serve app.py on a free port for one test and return its URL; the log is ``test-artifacts/streamlit-server.log``."""
    return start_server().url
