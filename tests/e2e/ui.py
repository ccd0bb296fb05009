"""Driving the app's pages in the browser: wait for a script run, open a page, set a number or a choice, screenshot.

Shared by the browser tests (``test_browser.py``, ``test_faults.py``); ``page``
is a Playwright page showing the app.
"""

import contextlib
import re
import weakref
from pathlib import Path

PAGE_MS = 60_000  # a page's first run (imports TensorFlow, builds the preview model)


_APP = '[data-testid="stApp"]'
_SOCKETS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # page -> the app's latest websocket


def track_app_socket(page) -> None:
    """Remember the websocket the app opens on ``page`` (call before the page opens the app; reloads are followed)."""
    page.on("websocket", lambda socket: _SOCKETS.__setitem__(page, socket) if "/_stcore/stream" in socket.url else None)


def _whole_run_finished(payload) -> bool:
    """True when a frame from the server says the app's script (not a fragment) finished a run."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    if isinstance(payload, str):
        return False
    message = ForwardMsg.FromString(payload)
    return message.WhichOneof("type") == "script_finished" and message.script_finished in (
        ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)


@contextlib.contextmanager
def rerun(page, timeout: int = PAGE_MS):
    """Around an action that reruns the app: after the block, wait for that rerun to finish.

    The server's "script finished" message is awaited, so a rerun that has not
    begun yet is not mistaken for a finished one (needs :func:`track_app_socket`).
    """
    with _SOCKETS[page].expect_event("framereceived", predicate=_whole_run_finished, timeout=timeout):
        yield
    wait_for_run(page, timeout)


def wait_for_run(page, timeout: int = PAGE_MS) -> None:
    """Wait until the app's script is connected and not running (after :func:`rerun`, or once its output shows)."""
    from playwright.sync_api import expect

    expect(page.locator(f'{_APP}[data-test-connection-state="CONNECTED"]')).to_be_attached(timeout=timeout)
    expect(page.locator(f'{_APP}[data-test-script-state="notRunning"]')).to_be_attached(timeout=timeout)


def open_page(page, title: str) -> None:
    """Go to a page through the sidebar navigation (the session and its state stay), and wait for its title.

    The new page's title appears only once its run has begun; then its run is waited for.
    """
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=PAGE_MS)
    wait_for_run(page)


def set_number(page, label: str, value: int) -> None:
    """Type ``value`` into the number input labelled ``label`` and commit it (Enter), then wait for the rerun."""
    from playwright.sync_api import expect

    field = page.get_by_label(label, exact=True)
    if field.input_value() == str(value):  # an unchanged value triggers no rerun
        return
    with rerun(page):
        field.fill(str(value))
        field.press("Enter")
    expect(field).to_have_value(str(value))


def choose(page, key: str, option: str) -> None:
    """Pick ``option`` in the select box whose widget key is ``key``, then wait for the rerun."""
    from playwright.sync_api import expect

    box = page.locator(f".st-key-{key}")
    field = box.get_by_role("combobox")
    box.scroll_into_view_if_needed()
    if field.input_value() == option:  # choosing the current option triggers no rerun
        return
    box.get_by_role("button", name="Open").click()
    with rerun(page):
        page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(option)}$")).click()
    expect(field).to_have_value(option)


def screenshot(page, artifacts: Path, name: str) -> None:
    """Save the whole page to ``test-artifacts/screenshots/<name>.png``.

    Streamlit scrolls inside its own container, not the document, so the
    viewport is made as tall as the content for the shot.
    """
    size = page.viewport_size
    height = page.evaluate("() => (document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 10_000)})
    # Charts re-layout to the new size on the next frames; wait for two of them to be drawn.
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    page.screenshot(path=artifacts / "screenshots" / f"{name}.png", full_page=True)
    page.set_viewport_size(size)
