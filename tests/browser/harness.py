"""What both browser checks share: Debian's chromium, a free port, a local server started and
stopped around a test, and a headless page that can reach only localhost (there is no network in
CI; where a firewall drops off-host requests instead of refusing them, a page waiting on them
would never load, so every such request is aborted at once and recorded for failure messages).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(
    args: list[str], cwd: Path, env: dict, probe_url: str, log_path: Path, name: str, timeout: float = 90
) -> Iterator[subprocess.Popen]:
    """Run a server process, wait until ``probe_url`` answers (fail with its log if it never does),
    and stop it afterwards (terminate, then kill)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    urllib.request.urlopen(probe_url, timeout=2)
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        pytest.fail(f"{name} did not start; log:\n{log_path.read_text()[-3000:]}")
                    time.sleep(0.5)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def offline_page(sync_api: Any, viewport: dict, blocked: list[str]) -> Iterator[Any]:
    """A headless chromium page whose off-host requests are aborted (their URLs go to ``blocked``)."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport=viewport)

            def offline(route: Any) -> None:
                if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            yield page
        finally:
            browser.close()
