"""The widgets work in JupyterLab, where people run the tutorials (``make lab``): the test starts a
JupyterLab server on a free localhost port over a temporary copy of tests/browser/widget_lab.ipynb,
Debian's chromium (headless, driven by Playwright) opens the notebook, runs it with Run → Run All
Cells, and works one control of each of the seven widgets on it (SAETrainingMonitor,
LayerSelectionView, LatentBrowser, SubspaceInspector, UnlearningMonitor, ExportPanel,
VerificationView) — the Voilà check covers CaptureExplorer and BeforeAfter. Each interaction goes
through the kernel and its effect is asserted in the page; no widget may show an error.

Skips with a reason when chromium, Playwright or JupyterLab is missing (``.ci/run`` installs
chromium; ``make test`` the rest). There is no network in CI: JupyterLab is started with its news
feed, update check and PyPI extension manager off, and every request the page makes that is not for
the local server is aborted (and reported on failure), as in the Voilà check.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

import pytest

from sae_unlearn.widgets.unlearning import method_option
from tests.browser.harness import CHROMIUM, free_port, offline_page, served

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).resolve().parent
NOTEBOOK = "widget_lab.ipynb"
# User settings for the test's JupyterLab (a temporary settings folder, so a user's own are not read):
# render every cell (no windowing, so widgets far down the notebook are in the page), no autosave,
# and neither news nor update checks. Comms over kernel subshells stay at JupyterLab's default (4.6:
# one subshell per comm target, so widget messages are handled on a second kernel thread): the plot
# functions' figures are outside pyplot (sae_unlearn.viz.figure), so IPython's redraw on that thread
# cannot collide with a widget callback drawing on the main one.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
RAN = re.compile(r"\[(\*|\d+)\]")  # the input prompt of a queued or finished cell, not "[ ]"
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model", "Traceback (most recent call last)")


@pytest.fixture
def lab(tmp_path, stage, secrets_oracle):  # the fixtures build the zoo models and fit the shared SAEs first
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install jupyterlab)")
    root, settings = tmp_path / "root", tmp_path / "lab-settings"
    root.mkdir()
    shutil.copy(HERE / NOTEBOOK, root / NOTEBOOK)  # the server works on a copy: nothing in the repo changes
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),  # not the user's ~/.jupyter
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        "WIDGET_EXPORT_DIR": str(tmp_path / "export"),  # where the notebook's ExportPanel writes
    }
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        # Nothing phones home: no news feed, no update check, no PyPI listing in the extension manager.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.name == "posix" and os.geteuid() == 0:
        args.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "jupyterlab.log"
    with served(args, root, env, f"{base}/api/status?token={token}", log_path, "JupyterLab"):
        yield {"url": f"{base}/lab/tree/{NOTEBOOK}?token={token}", "log": log_path, "export": tmp_path / "export"}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_widgets_run_and_respond_in_jupyterlab(lab, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    shot = Path(os.environ.get("SAE_UNLEARN_ARTIFACTS", tmp_path)) / "jupyterlab_widgets.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []
    console: list[str] = []

    def log_console(page) -> str:
        """JupyterLab's log console: where output and errors of widget callbacks go."""
        try:
            page.keyboard.press("Escape")
            page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click(timeout=5_000)
            page.get_by_text("Show Log Console", exact=True).click(timeout=5_000)
            return page.locator(".jp-LogConsolePanel").inner_text(timeout=5_000)[-6000:]
        except Exception as e:  # only for the failure message
            return f"(could not read it: {type(e).__name__})"

    def saw(what: str, page=None) -> str:
        """What the test saw, for a failure message."""
        return (
            f"{what}\nblocked off-host requests: {blocked}\nbrowser console (errors): {console[-20:]}\n"
            + (f"log console (widget callbacks):\n{log_console(page)}\n" if page is not None else "")
            + f"JupyterLab log (tail):\n{lab['log'].read_text()[-4000:]}"
        )

    with offline_page(sync_api, {"width": 1400, "height": 1600}, blocked) as page:
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(lab["url"], wait_until="commit", timeout=120_000)

        def cell(constructor: str):
            """The code cell whose source calls ``constructor`` (its output holds that widget)."""
            return page.locator(".jp-Notebook .jp-CodeCell").filter(has_text=constructor)

        try:
            # The notebook is open and its kernel has started (the status bar says so; Run All Cells
            # before that is dropped, not queued).
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=180_000)
            page.locator(".jp-StatusBar-TextItem", has_text="| Idle").wait_for(timeout=180_000)
            for attempt in range(3):
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.get_by_text("Run All Cells", exact=True).click()
                try:  # the cells are queued ([*]) or have run ([1])
                    page.locator(".jp-InputPrompt", has_text=RAN).first.wait_for(timeout=30_000)
                    break
                except sync_api.TimeoutError:
                    if attempt == 2:
                        raise
            # The last cell's widget appears when every cell has run.
            page.wait_for_selector(".widget-toggle-button:has-text('logit_lens')", timeout=420_000)
        except sync_api.TimeoutError:
            page.screenshot(path=str(shot), full_page=True)
            pytest.fail(saw(f"the notebook did not run to its last widget (screenshot {shot})", page))

        def problems() -> list[str]:
            text = page.locator(".jp-Notebook").inner_text()
            return [e for e in WIDGET_ERRORS if e in text]

        try:
            assert not problems(), saw(f"a widget shows an error: {problems()}")
            # The kernel is this .venv's Python (the one running the server), not some other python3.
            assert page.get_by_text(f"kernel prefix: {sys.prefix}").count() == 1, saw("kernel prefix not shown")

            def img_src(c) -> str:
                return c.locator("img").first.get_attribute("src")

            def wait_changed(c, before: str) -> None:
                """Wait until the first figure in cell ``c`` is not ``before`` any more."""
                page.wait_for_function(
                    "([el, src]) => el.querySelector('img') && el.querySelector('img').src !== src",
                    arg=[c.element_handle(), before],
                    timeout=60_000,
                )

            # SAETrainingMonitor: switch the plotted metric; the figure is redrawn.
            c = cell("SAETrainingMonitor(")
            assert "FVE" in c.locator(".widget-html").first.inner_text()
            before = img_src(c)
            c.get_by_role("button", name="l0", exact=True).click()
            wait_changed(c, before)

            # LayerSelectionView: inspect a layer other than the chosen one.
            c = cell("LayerSelectionView(")
            info = c.locator(".widget-html").first
            assert "(chosen)" in info.inner_text()
            c.locator("select").select_option(label="blocks.0.hook_resid_post")
            sync_api.expect(info).not_to_contain_text("(chosen)", timeout=60_000)
            sync_api.expect(info).to_contain_text("blocks.0.hook_resid_post")

            # LatentBrowser: type text; the table of latents firing on each token appears.
            c = cell("LatentBrowser(")
            c.locator(".widget-text input").fill("Pavel Thornbury's secret passcode is")
            c.get_by_role("button", name="which latents fire?").click()
            table = c.locator("table", has_text="forget-relevant")
            table.wait_for(timeout=60_000)
            assert "Thornbury" in table.inner_text() and "*" in table.inner_text()

            # SubspaceInspector: set the slider to 5 latents (its readout, then Enter); ranks rebuild.
            c = cell("SubspaceInspector(")
            relevant_rank = c.locator("tbody tr td").first
            assert relevant_rank.inner_text().strip() == "64"
            readout = c.locator(".widget-readout")  # contenteditable: fill() replaces its text
            readout.fill("5")
            readout.press("Enter")
            sync_api.expect(relevant_rank).to_have_text("5", timeout=60_000)

            # UnlearningMonitor: ran SSPU in the notebook; pick RMU and press Run. (The cell also
            # shows transformers' "Loading weights" bar: look inside the monitor's own box.)
            run = page.get_by_role("button", name="Run", exact=True)
            c = cell("UnlearningMonitor(").locator(".widget-vbox").filter(has=run)
            status = c.locator(":scope > .widget-html")
            assert "sspu done" in status.inner_text()
            c.locator("select").select_option(label=method_option("rmu"))  # the menu lists every method
            c.locator(run).click()
            sync_api.expect(status).to_contain_text("rmu done", timeout=120_000)

            # ExportPanel: press Export; where it wrote and the reload check are shown.
            export = page.get_by_role("button", name="Export", exact=True)
            c = cell("ExportPanel(").locator(".widget-vbox").filter(has=export)
            c.locator(export).click()
            status = c.locator(":scope > .widget-html")
            sync_api.expect(status).to_contain_text("model.safetensors", timeout=120_000)
            assert "max logit difference" in status.inner_text()
            assert (lab["export"] / "sspu_model" / "model.safetensors").is_file()

            # VerificationView: show another figure.
            c = cell("VerificationView(")
            assert "sspu (10 steps):" in c.locator("h3").inner_text()
            before = img_src(c)
            c.get_by_role("button", name="logit_lens", exact=True).click()
            wait_changed(c, before)

            assert not problems(), saw(f"a widget shows an error: {problems()}")
        except (AssertionError, sync_api.TimeoutError, sync_api.Error) as e:
            page.screenshot(path=str(shot), full_page=True)
            pytest.fail(saw(f"{type(e).__name__}: {e} (screenshot {shot})", page))
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
