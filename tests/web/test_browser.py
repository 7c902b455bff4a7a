"""End to end in headless Chromium (Playwright's sync API, the system's /usr/bin/chromium):
load the page, run a query, drag a window and see the refined map, see a syntax error's
caret, complete a method's name, find counterfactual neurons. Screenshots of each step are
saved under the test session's temporary directory (``screenshots/``)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytest.importorskip("starlette", reason="the page needs the web extra: pip install 'ialgebra[web]'")
pytest.importorskip("uvicorn", reason="the page is served by uvicorn: pip install 'ialgebra[web]'")
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the browser tests need Playwright's Python package (pip install playwright)",
)
if not (CHROMIUM.exists() or shutil.which("chromium")):
    pytest.skip(
        "the browser tests need Chromium at /usr/bin/chromium (apt-get install chromium)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def url(server):
    import uvicorn

    from algebra.web.app import build_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(build_app(server, hosts=["127.0.0.1"]), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    end = time.perf_counter() + 30
    while not web.started and time.perf_counter() < end:
        time.sleep(0.02)
    assert web.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/"
    web.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("IALGEBRA_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(url):
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.errors = errors
        yield page
        browser.close()


def run(page, text):
    page.fill("#query", text)
    page.click("#run")
    sync_api.expect(page.locator("#run")).to_be_disabled(timeout=5_000)
    sync_api.expect(page.locator("#run")).to_be_enabled(timeout=60_000)


def test_the_page_loads_and_runs_its_first_query(page, shots):
    page.wait_for_selector(".cell img.heat", timeout=60_000)
    assert page.locator(".thumb").count() == 40
    assert "shapley" in page.inner_text("#result-title")
    assert page.inner_text("#plan").startswith("plan:")
    page.screenshot(path=shots / "1-loaded.png", full_page=True)
    assert not page.errors


def test_a_query_then_a_drag_shows_the_refined_map(page, shots):
    run(page, "select * from f(x) using shapley(samples=4, seed=0)")
    assert page.locator(".cell").count() == 1
    heat = page.locator(".cell").first
    before = heat.locator("img.heat").get_attribute("src")
    box = heat.bounding_box()
    # From the middle of pixel (row 8, column 6) to the middle of pixel (15, 19) of the 32x32 map.
    page.mouse.move(box["x"] + box["width"] * 6.5 / 32, box["y"] + box["height"] * 8.5 / 32)
    page.mouse.down()
    page.mouse.move(
        box["x"] + box["width"] * 19.5 / 32, box["y"] + box["height"] * 15.5 / 32, steps=5
    )
    page.mouse.up()
    sync_api.expect(page.locator("#query")).to_have_value(re.compile(r"where \["))
    page.wait_for_selector(".cell.zoomed", timeout=60_000)  # the refined map, zoomed to its window
    text = page.input_value("#query")
    assert text.startswith("select * from f(x) using shapley(samples=4, seed=0) where [")
    window = [int(v) for v in text.split("where [")[1].rstrip("]").split(",")]
    assert window[0] < window[1] and window[2] < window[3]
    assert window == [8, 16, 6, 20]  # rows 8..15, columns 6..19, ends excluded
    assert page.locator(".cell img.heat").first.get_attribute("src") != before
    assert "window [8, 16, 6, 20]" in page.inner_text("#result-title")
    assert "where [8, 16, 6, 20]" in page.inner_text("#history")
    page.screenshot(path=shots / "2-drill-down.png", full_page=True)
    # Zoomed, the panel is the window (8 x 14): a drag inside it is in the window's grid.
    box = page.locator(".cell").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5 / 14, box["y"] + box["height"] * 4.5 / 8)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 6.5 / 14, box["y"] + box["height"] * 7.5 / 8, steps=5)
    page.mouse.up()
    sync_api.expect(page.locator("#result-title")).to_contain_text(
        "window [12, 16, 6, 13]", timeout=60_000
    )
    assert page.input_value("#query").endswith("where [8, 16, 6, 20] and [12, 16, 6, 13]")
    page.uncheck("#zoom")
    page.wait_for_selector(".cell .window")  # unzoomed: the whole image, the window outlined
    page.screenshot(path=shots / "3-drill-down-deeper.png", full_page=True)


def test_a_syntax_error_shows_its_caret(page, shots):
    page.fill("#query", "select * form f(x)")
    page.wait_for_selector("#query-error .caret", state="visible")
    caret = page.inner_text("#query-error .caret")
    source = page.inner_text("#query-error .source")
    assert caret.endswith("^") and source.rstrip().endswith("select * form f(x)")
    assert len(caret) - 1 == source.index("form")  # under the 'f' of 'form'
    assert "expected 'from'" in page.inner_text("#query-error")
    page.screenshot(path=shots / "4-syntax-error.png", full_page=True)


def test_completion_offers_method_names(page):
    page.fill("#query", "")
    page.type("#query", "select * from f(x) using sal")
    # The list follows the typing; the last answer (for "sal") is the one that stays.
    sync_api.expect(page.locator("#completions li")).to_have_text(["saliency"])
    page.keyboard.press("Tab")
    assert page.input_value("#query") == "select * from f(x) using saliency"


def test_the_neuroinspect_view_finds_neurons(page, shots):
    page.click("#tab-neuro")
    page.click("#n-find")
    page.wait_for_selector("#n-neurons input[type=checkbox]", timeout=90_000)
    assert "mistakes of class 8" in page.inner_text("#n-count")
    assert page.locator("#n-mistakes img").count() > 0
    page.screenshot(path=shots / "5-neuroinspect.png", full_page=True)
    assert not page.errors
