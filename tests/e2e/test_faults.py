"""Faults in a real browser: the server killed mid-training, and a tab refreshed or closed mid-training.

A killed server leaves a run that reads back as interrupted, whose last
checkpoint loads and predicts, and that the Runs page offers to continue. A
refreshed or closed tab does not stop training: the URL's ``?job=`` reattaches
a tab to its run, and a fresh tab finds the running run on the Runs page and
watches it through the link there. Fixtures are in ``tests/e2e/conftest.py``;
the servers' output goes to ``test-artifacts/faults-*.log``.
"""

import contextlib
import re
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.ui import PAGE_MS, open_page, screenshot, set_number, track_app_socket, wait_for_run
from tests.factories import colour_images
from tests.waiting import wait_until

PAINTS = {"crimson": (200, 30, 40), "lime": (60, 200, 40), "navy": (30, 40, 160)}
IMAGE_SIZE = 64
# Head epochs on cached features take about 0.05 s each on two cores: the run lasts long enough to be
# killed, refreshed and found again while it trains (the UI's epoch limit is 500).
KILL_EPOCHS = 500
REATTACH_EPOCHS = 300
CHECKPOINT_SECONDS = 90  # the first checkpoint follows the first epoch; model build and features come first
TRAIN_MS = 180_000


def paints_zip(target: Path) -> Path:
    """Zip three noisy solid-colour classes, 10 images each, one folder per class, to ``target``."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in colour_images(PAINTS, 10, seed=3, prefix="paints/").items():
            archive.writestr(name, content)
    return target


def start_training(page, url: str, archive: Path, epochs: int) -> str:
    """Open the app at ``url``, upload ``archive``, set a 64 px input and ``epochs`` head epochs without early
    stopping, and start training; return the job id (from the page's URL)."""
    from playwright.sync_api import expect

    page.goto(url)
    wait_for_run(page)
    open_page(page, "Dataset")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(archive)
    expect(page.get_by_text("Layout: folder-per-class")).to_be_visible(timeout=PAGE_MS)
    wait_for_run(page)
    open_page(page, "Model")
    set_number(page, "Input size (pixels)", IMAGE_SIZE)
    expect(page.get_by_text(f"Head sized for {len(PAINTS)} classes")).to_be_visible(timeout=PAGE_MS)
    open_page(page, "Train")
    set_number(page, "Epochs, at most (head on frozen base; early stopping ends sooner)", epochs)
    set_number(page, "Early-stopping patience (epochs, 0 = off)", 0)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"[?&]job=\w+"), timeout=PAGE_MS)
    return job_in(page.url)


def job_in(url: str) -> str:
    """The ``job`` query parameter of ``url``."""
    return parse_qs(urlparse(url).query)["job"][0]


def run_folder(home: Path, job_id: str, server, seconds: float = 0) -> Path:
    """The run folder of job ``job_id`` under ``home/runs`` (its name ends with the job id).

    The job's worker process makes the folder when training starts, which may be a while after the page
    shows the job running (a worker still importing TensorFlow): wait up to ``seconds`` for it to appear.
    Fails at once when the server died.
    """
    def found() -> list[Path]:
        assert server.process.poll() is None, f"the server ended before job {job_id}'s run folder was made; " \
                                              f"see {server.log_path} and {home / 'runs' / '.jobs' / job_id}"
        return list((home / "runs").glob(f"*-{job_id}"))

    folders = wait_until(found, seconds, f"no run folder for job {job_id} under {home / 'runs'}; "
                                         f"see {home / 'runs' / '.jobs' / job_id / 'worker.log'}", interval=0.2)
    assert len(folders) == 1, f"expected one run folder for job {job_id}, found {folders}"
    return folders[0]


def wait_for_new_checkpoint(path: Path, seconds: float, server, *, after: int | None = None) -> int:
    """Wait until ``path`` exists (and, given ``after``, was rewritten since: another inode); return its inode.

    Fails at once when the server died.
    """
    def written() -> int | None:
        assert server.process.poll() is None, f"the server ended before {path.name} was written; see {server.log_path}"
        inode = path.stat().st_ino if path.exists() else None
        return inode if inode != after else None

    return wait_until(written, seconds, f"no new {path}")


@contextlib.contextmanager
def browser_page(browser, artifacts: Path, name: str):
    """A page in a fresh browser context (no shared cookies or storage: a new user, or a new browser).

    A screenshot ``<name>-failure.png`` is taken when the block fails.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    track_app_socket(page)
    try:
        yield page
    except Exception:
        with contextlib.suppress(Exception):  # keep the test's own error, not one from the screenshot
            screenshot(page, artifacts, f"{name}-failure")
        raise
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_server_leaves_an_interrupted_run_that_loads_predicts_and_continues(
        browser, start_server, artifacts, tmp_path):
    from playwright.sync_api import expect

    from tltools import runs
    from tltools.model import load_model
    from tltools.prediction import predict_images

    home = tmp_path / "home"
    server = start_server("faults-kill", TLTOOLS_HOME=str(home))
    with browser_page(browser, artifacts, "faults-kill") as page:
        job_id = start_training(page, server.url, paints_zip(tmp_path / "paints.zip"), KILL_EPOCHS)
        expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=PAGE_MS)
        run_dir = run_folder(home, job_id, server, CHECKPOINT_SECONDS)
        first = wait_for_new_checkpoint(run_dir / runs.MODEL_FILE, CHECKPOINT_SECONDS, server)
        # The first checkpoint is the first epoch's; a later, better one follows at most 10 s on.
        wait_for_new_checkpoint(run_dir / runs.MODEL_FILE, CHECKPOINT_SECONDS, server, after=first)
        assert runs.read_run(run_dir).status == runs.RUNNING
        server.kill()

        restarted = start_server("faults-kill", TLTOOLS_HOME=str(home))
        page.goto(f"{restarted.url}/runs")
        expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)
        expect(page.locator(f".st-key-runs_manage_{run_dir.name}")).to_contain_text(f"{run_dir.name} · ⚠ interrupted")
        expect(page.get_by_text("interrupted: the process running it ended without finishing")).to_be_visible()
        screenshot(page, artifacts, "faults-interrupted-run")
        resume = page.locator(f".st-key-runs_continue_{run_dir.name}").get_by_role("button")
        expect(resume).to_be_enabled()
        resume.click()
        expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible(timeout=PAGE_MS)
        expect(page.get_by_text(f"Continuing from run {run_dir}")).to_be_visible(timeout=PAGE_MS)
        expect(page.get_by_role("button", name="Start training")).to_be_enabled()

    run = runs.read_run(run_dir)
    assert run.status == runs.INTERRUPTED
    assert run.classes == sorted(PAINTS)
    model, classes, _ = load_model(run_dir)
    assert classes == sorted(PAINTS) and model.input_shape[1:3] == (IMAGE_SIZE, IMAGE_SIZE)
    # New images of each paint: the checkpoint is a trained model, not a random one.
    fresh = colour_images(PAINTS, 3, seed=99)
    predicted = [prediction.top[0]["label"] for prediction in predict_images(model, classes, list(fresh.values()))]
    assert predicted == [name.split("/")[0] for name in fresh]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_refreshed_or_closed_tab_leaves_training_running_and_a_new_tab_finds_it(
        browser, start_server, artifacts, tmp_path):
    from playwright.sync_api import expect

    from tltools import runs

    home = tmp_path / "home"
    server = start_server("faults-reattach", TLTOOLS_HOME=str(home))
    progress = re.compile(r"training the head \(base frozen\): epoch \d+ of at most " + str(REATTACH_EPOCHS),
                          re.IGNORECASE)
    with browser_page(browser, artifacts, "faults-reattach") as page:
        job_id = start_training(page, server.url, paints_zip(tmp_path / "paints.zip"),
                                REATTACH_EPOCHS)
        expect(page.get_by_text(progress)).to_be_visible(timeout=PAGE_MS)

        page.reload()  # a new session with the same URL: ?job= brings back the run, its data and settings
        expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible(timeout=PAGE_MS)
        expect(page.get_by_text(progress)).to_be_visible(timeout=PAGE_MS)
        expect(page.get_by_text("paints.zip", exact=False).first).to_be_visible()
        expect(page.get_by_role("button", name="Start training")).to_be_disabled()
        screenshot(page, artifacts, "faults-reattached")
        # Closing the tab ends the browser session, not the training.

    run_dir = run_folder(home, job_id, server)
    with browser_page(browser, artifacts, "faults-new-tab") as page:
        page.goto(f"{server.url}/runs")
        expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)
        expect(page.locator(f".st-key-runs_manage_{run_dir.name}")).to_contain_text(f"{run_dir.name} · ▶ running")
        screenshot(page, artifacts, "faults-runs-running")
        page.get_by_role("link", name="Watch it train").click()
        page.wait_for_url(re.compile(rf"/train\?job={job_id}(&|$)"), timeout=PAGE_MS)  # &session=… follows
        expect(page.get_by_text(progress)).to_be_visible(timeout=PAGE_MS)
        expect(page.get_by_text(re.compile(r"Training completed"))).to_be_visible(timeout=TRAIN_MS)
        expect(page.get_by_text(f"Run {run_dir.name}")).to_be_visible()

    run = runs.read_run(run_dir)
    assert run.status == runs.COMPLETED
    assert run.metrics["epochs_run"] == REATTACH_EPOCHS and run.classes == sorted(PAINTS)
