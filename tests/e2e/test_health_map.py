"""The Data health page in a real browser: the analysis runs as a job, and clicking a point of the map shows its image.

Plotly draws hover labels as SVG text (bold, italics, line breaks, links), never an
``<img>``, so the map cannot show a picture on hover; clicking a point selects it
(``st.plotly_chart(on_select="rerun")``) and the page shows that image, its finding and
its nearest images beside the chart. This test clicks a real point of the WebGL
scatter and checks the card names that very image. Screenshots at 1400 and 800 px go
to ``test-artifacts/screenshots/health-map-*.png``.
"""

import re
import zipfile
from pathlib import Path

import pytest

from tests.e2e.ui import PAGE_MS, open_page, screenshot, set_number, track_app_socket, wait_for_run
from tests.health.data import write_health_set

ANALYSIS_MS = 240_000  # a fresh worker imports TensorFlow and extracts the features on two busy cores

# The page coordinates of one point of the map (a finding's: drawn larger) and the image it stands for.
POINT = """() => {
    const plot = document.querySelector('.st-key-health_map_chart .js-plotly-plot');
    if (!plot || !plot._fullLayout || !plot._fullData) return null;
    const layout = plot._fullLayout, box = plot.getBoundingClientRect();
    for (const trace of plot._fullData) {  // decoded arrays (plot.data may hold base64-packed ones)
        const sizes = trace.marker.size;
        for (let i = 0; i < trace.x.length; i++) {
            const size = typeof sizes === "number" ? sizes : sizes[i];
            const text = trace.hovertext[i];
            if (size > 7 && !text.includes("duplicate") && !text.includes("leakage")) {
                return {x: box.left + layout._size.l + layout.xaxis.l2p(trace.x[i]),
                        y: box.top + layout._size.t + layout.yaxis.l2p(trace.y[i]), text};
            }
        }
    }
    return null;
}"""


def shapes_zip(tmp_path: Path) -> Path:
    """The generated health set (a label error, a near copy and a blank frame among three shapes), zipped."""
    root = tmp_path / "shapes"
    write_health_set(root, per_class=10)
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(root.rglob("*.*")):
            out.write(path, f"shapes/{path.relative_to(root)}")
    return archive


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_analyse_in_the_background_then_click_a_map_point_to_see_its_image(browser, app_url, artifacts, tmp_path):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    track_app_socket(page)
    try:
        page.goto(app_url)
        wait_for_run(page)
        open_page(page, "Dataset")
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(shapes_zip(tmp_path))
        expect(page.get_by_text("Layout: folder-per-class")).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)
        open_page(page, "Model")
        set_number(page, "Input size (pixels)", 96)

        open_page(page, "Data health")
        page.get_by_role("button", name="Analyse").click()
        expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=PAGE_MS)  # it runs as a job
        expect(page.get_by_role("button", name="Analyse")).to_be_disabled()
        expect(page.get_by_test_id("stMetricLabel").filter(has_text="Likely label errors")).to_be_visible(
            timeout=ANALYSIS_MS)
        wait_for_run(page)

        page.get_by_role("tab", name="Map").click()
        page.wait_for_function(POINT, timeout=PAGE_MS)
        point = page.evaluate(POINT)
        relpath = re.match(r"[^<]+", point["text"]).group(0)
        page.mouse.click(point["x"], point["y"])
        card = page.locator(".st-key-health_map_selected")
        expect(card.get_by_text(relpath, exact=False)).to_be_visible(timeout=PAGE_MS)
        wait_for_run(page)
        expect(card.get_by_text("Click a point")).to_have_count(0)
        expect(card.get_by_role("img").first).to_be_visible()
        assert card.get_by_role("img").count() >= 2, "the image and its nearest images"
        screenshot(page, artifacts, "health-map-1400")
        page.set_viewport_size({"width": 800, "height": 1000})
        wait_for_run(page)
        screenshot(page, artifacts, "health-map-800")
    except Exception:
        screenshot(page, artifacts, "health-map-failed")
        raise
    finally:
        context.close()
