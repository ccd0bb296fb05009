"""The whole app in a real browser: upload a zip, train briefly with live charts, download the model, load it.

Debian's Chromium, driven by Playwright, talks to ``streamlit run app.py``
(fixtures in ``tests/e2e/conftest.py``). Every page is screenshotted to
``test-artifacts/screenshots/<page>.png``. The test skips only when
Playwright or ``/usr/bin/chromium`` is missing.
"""

import contextlib
import json
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.e2e.ui import PAGE_MS, choose, open_page, screenshot, set_number, track_app_socket, wait_for_run
from tests.factories import COLOURS, colour_images

FLOWERS12 = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "flowers12"
CLASSES = ("daisy", "sunflower", "tigerlily")
PER_SPLIT = {"train": 16, "test": 4}
IMAGE_SIZE = 96
# Phase 1 (head only) may take mere milliseconds per epoch; phase 2 fine-tunes the whole base, a second or more
# per epoch on two cores, so the live charts (refreshed every second) are seen changing while the run goes on.
EPOCHS = 4
FINE_TUNE_EPOCHS = 3

# Generous but bounded waits, in milliseconds.
TRAIN_SECONDS = 240
EXPORT_MS = 120_000

# Reads the live charts of the Train page: points per trace of each Plotly figure, and the progress text.
READ_LIVE = """() => {
    const points = (key) => {
        const plot = document.querySelector(`.st-key-${key} .js-plotly-plot`);
        return plot && plot.data ? plot.data.map((trace) => (trace.x || []).length) : null;
    };
    const bar = document.querySelector('[data-testid="stProgress"]');
    return {loss: points("train_loss_chart"), batches: points("train_batch_chart"),
            progress: bar ? bar.innerText.trim() : null};
}"""


def dataset_zip(target: Path) -> Path:
    """Zip a small pre-split dataset (``train/<class>/…``, ``test/<class>/…``) to ``target``.

    Three flowers12 classes, 16 train and 4 test images each, when ``../shared`` is
    there; otherwise three generated colour classes in the same layout.
    """
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        if FLOWERS12.is_dir():
            for split, count in PER_SPLIT.items():
                for name in CLASSES:
                    for image in sorted((FLOWERS12 / split / name).iterdir())[:count]:
                        archive.write(image, f"flowers/{split}/{name}/{image.name}")
        else:
            print(f"\n{FLOWERS12} is absent: uploading generated colour images instead")
            for split, count in PER_SPLIT.items():
                seed = 0 if split == "train" else 1
                for name, content in colour_images(COLOURS, count, seed, prefix=f"colours/{split}/").items():
                    archive.writestr(name, content)
    return target


def class_names(archive: Path) -> list[str]:
    """The class folders below ``train/`` in ``archive``, sorted."""
    with zipfile.ZipFile(archive) as opened:
        return sorted({name.split("/")[2] for name in opened.namelist() if name.split("/")[1] == "train"})


# Waits (checking every 100 ms) until the live state differs from ``last`` or the run has ended.
NEXT_LIVE = """(last) => {
    const state = (READ_LIVE)();
    const ended = /Training (completed|stopped|failed)/.test(document.body.innerText);
    return (ended || JSON.stringify(state) !== last) && {state, ended};
}""".replace("READ_LIVE", READ_LIVE)


def watch_training(page, artifacts: Path) -> list[dict]:
    """Read the live charts until training ends; return every distinct state seen while it was running.

    A state is the number of points of each trace of the loss and per-batch charts
    plus the progress text. The test takes the "train-running" screenshot once the
    loss chart shows its first epoch.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen, shot, last = [], False, None
    deadline = time.monotonic() + TRAIN_SECONDS
    while True:
        remaining_ms = (deadline - time.monotonic()) * 1000
        try:
            assert remaining_ms > 0
            change = page.wait_for_function(NEXT_LIVE, arg=json.dumps(last, separators=(",", ":")),
                                            timeout=remaining_ms, polling=100).json_value()
        except (AssertionError, PlaywrightTimeout):
            pytest.fail(f"training did not end within {TRAIN_SECONDS} s; states seen: {seen}")
        if change["ended"]:
            break
        last = change["state"]
        if last["progress"] is not None:
            seen.append(last)
            if last["loss"] and not shot:
                screenshot(page, artifacts, "train-running")
                shot = True
    failed = page.get_by_text("Training failed")
    assert not failed.count(), failed.first.inner_text()
    return seen


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_upload_train_watch_download_and_load(browser, app_url, artifacts, tmp_path):
    from playwright.sync_api import expect

    archive = dataset_zip(tmp_path / "flowers-mini.zip")
    classes = class_names(archive)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    track_app_socket(page)
    try:
        page.goto(app_url)
        expect(page.get_by_role("heading", name="Teach a pretrained model your own image classes")).to_be_visible(
            timeout=PAGE_MS)
        wait_for_run(page)
        screenshot(page, artifacts, "home")

        # Dataset: the real <input type=file> of the uploader, then the report.
        open_page(page, "Dataset")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(archive)
        expect(page.get_by_text("Layout: pre-split")).to_be_visible(timeout=PAGE_MS)
        images = len(classes) * sum(PER_SPLIT.values())
        expect(page.get_by_test_id("stMetricValue").filter(has_text=re.compile(rf"^{images}$"))).to_be_visible(
            timeout=PAGE_MS)
        wait_for_run(page)
        # Flipping makes every epoch see new pixels, so both phases train on images and last long enough
        # for the live charts to be seen updating (without it the cached-feature epochs take milliseconds).
        choose(page, "dataset_aug_flip", "horizontal")
        screenshot(page, artifacts, "dataset")

        # Model: a small input size keeps training short.
        open_page(page, "Model")
        set_number(page, "Input size (pixels)", IMAGE_SIZE)
        expect(page.get_by_text(f"Head sized for {len(classes)} classes")).to_be_visible(timeout=PAGE_MS)
        screenshot(page, artifacts, "model")

        # Train: a few epochs of each phase (all of them: early stopping off), then watch the live charts.
        open_page(page, "Train")
        set_number(page, "Epochs, at most (head on frozen base; early stopping ends sooner)", EPOCHS)
        set_number(page, "Fine-tuning epochs, at most (0 = skip)", FINE_TUNE_EPOCHS)
        set_number(page, "Early-stopping patience (epochs, 0 = off)", 0)
        start = page.get_by_role("button", name="Start training")
        start.click()
        started = time.monotonic()
        seen = watch_training(page, artifacts)
        print(f"\ntraining took {time.monotonic() - started:.0f} s; live states seen while it ran:")
        for state in seen:
            print(f"  {state}")
        # The loss chart, once drawn, must have been redrawn with more epochs at least twice.
        drawn = [tuple(state["loss"]) for state in seen if state["loss"]]
        assert len(set(drawn)) >= 3, f"the loss chart did not update twice while training ran: {drawn}"
        shown = [state["progress"] for state in seen if state["loss"]]
        phase = re.compile(r"^Phase [12] of 2, (training the head|fine-tuning|evaluating|completed)")
        assert all(phase.match(text) for text in shown), \
            f"the progress bar does not name the phase while epochs are drawn: {sorted(set(shown))[:20]}"
        expect(page.get_by_text(re.compile(r"Training completed"))).to_be_visible()
        expect(start).to_be_enabled(timeout=PAGE_MS)  # the page reran as a whole once the job ended
        wait_for_run(page)
        done_text = page.get_by_test_id("stAlertContentSuccess").filter(has_text="Training completed").inner_text()
        run_id = re.search(r"Run (\S+?)\.?$", done_text.strip()).group(1).strip("`")
        final = page.evaluate(READ_LIVE)["loss"]
        total = EPOCHS + FINE_TUNE_EPOCHS
        assert final == [total, total], f"the finished loss chart has {final} points per trace, not {total}"
        screenshot(page, artifacts, "train-done")

        open_page(page, "Evaluate")
        expect(page.get_by_test_id("stMetricLabel").filter(has_text="Accuracy").first).to_be_visible(
            timeout=PAGE_MS)
        screenshot(page, artifacts, "evaluate")

        # Predict: one test image through the page's uploader.
        open_page(page, "Predict")
        expect(page.get_by_text(f"{len(classes)} classes (")).to_be_visible(timeout=PAGE_MS)
        with zipfile.ZipFile(archive) as opened:
            name = next(name for name in sorted(opened.namelist()) if name.split("/")[1] == "test")
            image = {"name": Path(name).name, "mimeType": "image/png" if name.endswith(".png") else "image/jpeg",
                     "buffer": opened.read(name)}
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(image)
        expect(page.get_by_role("heading", name="Results")).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)
        screenshot(page, artifacts, "predict")

        # Runs: build the .keras export, then download it through the button.
        open_page(page, "Runs")
        page.locator(f".st-key-runs_prepare_{run_id}_keras").get_by_role("button").click()
        download_button = page.locator(f".st-key-runs_download_{run_id}_keras").get_by_role("button")
        expect(download_button).to_be_visible(timeout=EXPORT_MS)
        wait_for_run(page)
        with page.expect_download(timeout=PAGE_MS) as download_info:
            download_button.click()
        downloaded = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(downloaded)
        screenshot(page, artifacts, "runs")
    except Exception:
        with contextlib.suppress(Exception):  # keep the test's own error, not one from the screenshot
            screenshot(page, artifacts, "failure")
        raise
    finally:
        context.close()

    assert downloaded.name == f"{run_id}.keras"
    import keras

    import tltools.model  # registers the custom layers the model file names

    model = keras.saving.load_model(downloaded, safe_mode=True)
    assert model.output_shape == (None, len(classes))
    assert model.input_shape[1:3] == (IMAGE_SIZE, IMAGE_SIZE)
    _, names, _ = tltools.model.load_model(downloaded)
    assert names == classes
