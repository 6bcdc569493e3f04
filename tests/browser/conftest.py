"""The widget notebooks here (widget_page.ipynb, widget_lab.ipynb) are run by the browser checks
beside them. nbmake runs them as plain notebooks too only where those checks skip (no chromium,
Playwright, Voilà or JupyterLab), so on a machine that can run the checks each notebook runs once.
"""

from __future__ import annotations

import importlib.util
import shutil

_BROWSER_CHECKS_RUN = bool(shutil.which("chromium") or shutil.which("chromium-browser")) and all(
    importlib.util.find_spec(name) is not None for name in ("playwright", "voila", "jupyterlab")
)
collect_ignore_glob = ["*.ipynb"] if _BROWSER_CHECKS_RUN else []
