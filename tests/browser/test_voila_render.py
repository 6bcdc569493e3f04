"""A notebook with widgets renders in a real browser: Voilà serves tests/browser/widget_page.ipynb
on localhost, Debian's chromium (headless, driven by Playwright) loads it, the widgets appear,
a click goes through the kernel and redraws (CaptureExplorer), a typed prompt is answered by both
models (BeforeAfter), and a screenshot is saved. The other seven widgets are checked in JupyterLab
(test_jupyterlab_render.py).

Skips with a reason when chromium, Voilà or Playwright is missing (``.ci/run`` installs them).

The page asks a CDN for Font Awesome; there is no network in CI, and where a firewall drops such
requests instead of refusing them the page's ``load`` event never fires. So every request that is
not for the local Voilà server is aborted at once, and the test waits for the widgets themselves
rather than for ``load``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.browser.harness import CHROMIUM, free_port, offline_page, served

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).resolve().parent


@pytest.fixture
def voila_url(tmp_path, secrets_model, secrets_oracle):  # the fixtures build the zoo models first
    pytest.importorskip("voila", reason="Voilà is not installed (pip install voila)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    args = [
        sys.executable,
        "-m",
        "voila",
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "widget_page.ipynb",
    ]
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    with served(args, HERE, env, url, tmp_path / "voila.log", "Voilà", timeout=60):
        yield url


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_widgets_render_and_respond_in_headless_chromium(voila_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    shot = Path(os.environ.get("SAE_UNLEARN_ARTIFACTS", tmp_path)) / "voila_widgets.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []
    with offline_page(sync_api, {"width": 1200, "height": 1400}, blocked) as page:
        page.goto(voila_url, wait_until="commit", timeout=120_000)
        # The kernel runs the notebook; the widgets appear when their cells have run.
        try:
            page.wait_for_selector(".widget-dropdown select", timeout=420_000)
            page.wait_for_selector("text=Where does", timeout=240_000)
        except sync_api.TimeoutError:
            log = (tmp_path / "voila.log").read_text()[-3000:]
            pytest.fail(f"the widgets did not appear; blocked off-host requests: {blocked}\nVoilà log:\n{log}")
        assert page.locator(".widget-toggle-buttons").count() >= 1
        assert page.locator(".widget-button", has_text="Answer").count() == 1
        assert page.locator("td", has_text="Rotterdam").count() >= 1 or page.locator("td").count() >= 8
        assert page.locator("img").count() >= 1  # the matplotlib figure
        before = page.locator("img").first.get_attribute("src")
        page.get_by_role("button", name="histogram").click()
        page.wait_for_function(
            "src => document.querySelector('img') && document.querySelector('img').src !== src",
            arg=before,
            timeout=60_000,
        )
        # BeforeAfter: type a prompt and press Answer; both models' answers to it join the table.
        rows = page.locator("tbody tr")
        n_rows = rows.count()
        page.locator(".widget-text input").fill("Q: Where does Nobody Known live? A:")
        page.get_by_role("button", name="Answer").click()
        sync_api.expect(rows).to_have_count(n_rows + 1, timeout=60_000)
        assert "Nobody Known" in rows.last.inner_text()
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
