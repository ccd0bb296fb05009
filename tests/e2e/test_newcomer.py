"""Issue 13 in a real browser: what a newcomer meets on every page, at 1400 px, 800 px and (Predict) phone width.

Two short runs are trained in the test process first (the server shares
``TLTOOLS_HOME`` with it), so Evaluate, Predict and Runs have something to show
without training through the browser (``test_browser.py`` does that). Then one
browser session: a good upload and a failed one (no stale report), a Model
setting that survives a reload, and every page at both widths, each checked for
metric values cut short, a page wider than the window, and any request to a
host other than the app's own. Screenshots go to
``test-artifacts/screenshots/<page>-<width>.png``; the server's log must hold no
deprecation warning.
"""

import contextlib
import io
import re
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from tests.e2e.ui import PAGE_MS, open_page, rerun, screenshot, set_number, track_app_socket, wait_for_run
from tests.factories import COLOURS, colour_images, fast_config, image_bytes

WIDTHS = (1400, 800)
PHONE = 390
HOME_HEADING = "Teach a pretrained model your own image classes"
PAGES = ("Home", "Dataset", "Model", "Train", "Evaluate", "Predict", "Runs")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NEXT_LINKS = {"Dataset", "Model", "Evaluate", "Predict", "Runs"}  # Home leads on with its own buttons, Train once done

# Every metric value (and anything inside it) that is wider than its box, i.e. cut off or ellipsised.
CLIPPED_METRICS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')].flatMap((box) =>
    [box, ...box.querySelectorAll('*')]
        .filter((el) => el.scrollWidth > el.clientWidth + 1)
        .map((el) => `${box.innerText.trim()} (${el.scrollWidth} px in ${el.clientWidth} px)`))"""
# How much wider than the window the page's main area is (0 when nothing scrolls sideways).
OVERFLOW = """() => { const main = document.querySelector('[data-testid="stMain"]');
    return main ? main.scrollWidth - main.clientWidth : 0; }"""


def colours_zip() -> bytes:
    """A small folder-per-class upload: three colours, eight images each."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in colour_images(COLOURS, 8, seed=3, prefix="colours/").items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def two_runs(colours):
    """Two finished runs on the colour data that differ in learning rate (in the shared TLTOOLS_HOME)."""
    from tltools.training import train

    return [train(fast_config(epochs=1, learning_rate=rate), colours).run for rate in (1e-3, 3e-2)]


def check_page(page, artifacts: Path, name: str, width: int, problems: list[str]) -> None:
    """Screenshot the page at ``width`` and record clipped metrics and sideways overflow in ``problems``."""
    page.set_viewport_size({"width": width, "height": 1000})
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    page.wait_for_timeout(300)  # Streamlit's own resize observers re-lay out charts and columns
    clipped = page.evaluate(CLIPPED_METRICS)
    if clipped:
        problems.append(f"{name} at {width} px: clipped metric values {clipped}")
    overflow = page.evaluate(OVERFLOW)
    if overflow > 1:
        problems.append(f"{name} at {width} px: the page is {overflow} px wider than the window")
    screenshot(page, artifacts, f"{name.lower()}-{width}")


def goto(page, base: str, path: str) -> None:
    """Open ``path`` of the app in this session (its ``?session=`` token kept), e.g. where no sidebar shows."""
    query = urllib.parse.urlsplit(page.url).query
    page.goto(f"{base}/{path}?{query}")
    wait_for_run(page)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_newcomer_meets_no_stale_report_keeps_settings_and_reads_every_page(
        browser, start_server, artifacts, two_runs, tmp_path):
    from playwright.sync_api import expect

    server = start_server("newcomer-server")
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 1000}, accept_downloads=True)
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    track_app_socket(page)
    problems: list[str] = []
    try:
        page.goto(server.url)
        expect(page.get_by_role("heading", level=1).first).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)

        # Dataset: a good upload, then a bad one: only the error shows, and which dataset is still loaded.
        open_page(page, "Dataset")
        uploader = page.get_by_test_id("stFileUploaderDropzoneInput")
        good = {"name": "colours.zip", "mimeType": "application/zip", "buffer": colours_zip()}
        uploader.set_input_files(good)
        expect(page.get_by_test_id("stMetricValue").filter(has_text=re.compile(r"^24$"))).to_be_visible(
            timeout=PAGE_MS)
        wait_for_run(page)
        with rerun(page):
            uploader.set_input_files({"name": "broken.zip", "mimeType": "application/zip",
                                      "buffer": b"this is not a zip archive"})
        expect(page.get_by_test_id("stAlertContentError").filter(has_text="broken.zip")).to_be_visible()
        assert page.get_by_test_id("stMetricValue").count() == 0, "the earlier dataset's report is still shown"
        expect(page.get_by_text(re.compile(r"Still loaded: colours\.zip"))).to_be_visible()
        screenshot(page, artifacts, "dataset-failed-upload")

        # Model: a changed setting survives a reload of the page.
        open_page(page, "Model")
        set_number(page, "Input size (pixels)", 96)
        page.reload()
        expect(page.get_by_role("heading", name="Model", level=1)).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)
        expect(page.get_by_label("Input size (pixels)", exact=True)).to_have_value("96")

        for name in PAGES:
            page.set_viewport_size({"width": WIDTHS[0], "height": 1000})
            if name == "Home":  # its heading is its pitch, not its name
                page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
                expect(page.get_by_role("heading", name=HOME_HEADING)).to_be_visible(timeout=PAGE_MS)
                wait_for_run(page)
            else:
                open_page(page, name)
            if name == "Predict":
                with rerun(page):
                    page.get_by_test_id("stFileUploaderDropzoneInput").last.set_input_files(
                        [{"name": "red.png", "mimeType": "image/png", "buffer": image_bytes((210, 30, 30), (64, 64))},
                         {"name": "blue.png", "mimeType": "image/png", "buffer": image_bytes((30, 30, 210), (64, 64))}])
                expect(page.get_by_role("heading", name="Results")).to_be_visible(timeout=PAGE_MS)
            if name == "Runs":
                page.locator(".st-key-runs_chosen").get_by_role("combobox").click()
                with rerun(page):
                    page.get_by_role("option").first.click()
                page.keyboard.press("Escape")
                expect(page.get_by_text("Settings side by side")).to_be_visible(timeout=PAGE_MS)
            for width in WIDTHS:
                check_page(page, artifacts, name, width, problems)
            next_link = page.get_by_test_id("stPageLink").filter(has_text="Next")
            if name in NEXT_LINKS:
                expect(next_link.last).to_be_visible()
            if name == "Predict":  # a phone: the sidebar folds away, the page must still read
                check_page(page, artifacts, name, PHONE, problems)
    except Exception:
        with contextlib.suppress(Exception):  # keep the test's own error, not one from the screenshot
            screenshot(page, artifacts, "newcomer-failure")
        raise
    finally:
        context.close()

    assert not problems, "\n".join(problems)
    foreign = sorted({url for url in requests if urllib.parse.urlsplit(url).scheme in ("http", "https", "ws", "wss")
                      and urllib.parse.urlsplit(url).hostname not in LOCAL_HOSTS})
    assert not foreign, f"the pages asked hosts other than the app's own: {foreign}"
    log = server.log_path.read_text(errors="replace")
    deprecations = [line for line in log.splitlines() if re.search(r"deprecat", line, re.IGNORECASE)]
    assert not deprecations, "the server log has deprecation warnings:\n" + "\n".join(deprecations[:10])
