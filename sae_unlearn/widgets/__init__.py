"""Jupyter widgets, one per pipeline step, over the pure plot functions of :mod:`sae_unlearn.viz`.

Each widget is an ``ipywidgets.VBox``: put it last in a cell to display it. Controls
(dropdowns, sliders, buttons) redraw through the plot functions; the state a user sees is also
on the object (``.panel.figure``, ``.rows``, ``.history``) for scripts and tests.

Room: the notebook controllers, the top floor with ``demo``, ``recipes`` and ``pipeline``: may
import any stage.
"""

from sae_unlearn.widgets.pipeline import (
    CaptureExplorer,
    LatentBrowser,
    LayerSelectionView,
    SAETrainingMonitor,
    SubspaceInspector,
)
from sae_unlearn.widgets.unlearning import BeforeAfter, ExportPanel, UnlearningMonitor, VerificationView

__all__ = [
    "BeforeAfter",
    "CaptureExplorer",
    "ExportPanel",
    "LatentBrowser",
    "LayerSelectionView",
    "SAETrainingMonitor",
    "SubspaceInspector",
    "UnlearningMonitor",
    "VerificationView",
]
