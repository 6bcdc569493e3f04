"""A panel that shows one matplotlib figure and keeps it for inspection."""

from __future__ import annotations

import ipywidgets as widgets
from IPython.display import display
from matplotlib.figure import Figure

from sae_unlearn.viz.tables import table_html

__all__ = ["FigurePanel", "table_html"]  # table_html lives in viz (usable without widgets)


class FigurePanel(widgets.Output):
    """An ``Output`` area showing the latest figure; ``.figure`` holds it (tests read it)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.figure: Figure | None = None

    def show(self, fig: Figure) -> None:
        """Replace what is shown with ``fig`` (a :class:`~sae_unlearn.viz.figure.PlotFigure`, which pyplot
        never redraws from another kernel thread)."""
        self.figure = fig
        self.clear_output(wait=True)
        with self:
            display(fig)
