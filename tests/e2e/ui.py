"""Driving the app's pages in the browser: wait for a script run, open a page, set a number or a choice, screenshot.

Shared by the browser tests (``test_browser.py``, ``test_faults.py``); ``page``
is a Playwright page showing the app.
"""

import re
from pathlib import Path

PAGE_MS = 60_000  # a page's first run (imports TensorFlow, builds the preview model)


_APP = '[data-testid="stApp"]'
# Counts the app's script runs that begin from now on: Streamlit flips the stApp element's
# data-test-script-state to "running" when a rerun starts and back when it ends.
_COUNT_RUNS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__tltoolsRuns = 0;
    if (window.__tltoolsRunWatch) window.__tltoolsRunWatch.disconnect();
    window.__tltoolsRunWatch = new MutationObserver((changes) => {
        for (const change of changes)
            if (change.target.getAttribute("data-test-script-state") === "running" || change.oldValue === "running")
                window.__tltoolsRuns += 1;
    });
    window.__tltoolsRunWatch.observe(app, {attributes: true, attributeOldValue: true,
                                           attributeFilter: ["data-test-script-state"]});
}"""


def expect_rerun(page) -> None:
    """Start counting the app's reruns; the next :func:`wait_for_run` then waits for one that began after this."""
    page.evaluate(_COUNT_RUNS)


def wait_for_run(page, timeout: int = PAGE_MS) -> None:
    """Wait until the app's script is connected and no longer running.

    After :func:`expect_rerun` it first waits for a rerun to have begun since then,
    so an action's rerun that has not started yet is not mistaken for a finished one.
    """
    from playwright.sync_api import expect

    if page.evaluate("() => window.__tltoolsRuns !== undefined"):
        page.wait_for_function("() => window.__tltoolsRuns > 0", timeout=timeout)
        page.evaluate("() => { window.__tltoolsRunWatch.disconnect(); delete window.__tltoolsRuns; }")
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
    if field.input_value() != str(value):  # an unchanged value triggers no rerun
        expect_rerun(page)
    field.fill(str(value))
    field.press("Enter")
    expect(field).to_have_value(str(value))
    wait_for_run(page)


def choose(page, key: str, option: str) -> None:
    """Pick ``option`` in the select box whose widget key is ``key``, then wait for the rerun."""
    from playwright.sync_api import expect

    box = page.locator(f".st-key-{key}")
    field = box.get_by_role("combobox")
    box.scroll_into_view_if_needed()
    if field.input_value() != option:  # choosing the current option triggers no rerun
        expect_rerun(page)
    box.get_by_role("button", name="Open").click()
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(option)}$")).click()
    expect(field).to_have_value(option)
    wait_for_run(page)


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
