"""A panel that shows one matplotlib figure and keeps it for inspection."""

from __future__ import annotations

import html

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure


class FigurePanel(widgets.Output):
    """An ``Output`` area showing the latest figure; ``.figure`` holds it (tests read it)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.figure: Figure | None = None

    def show(self, fig: Figure) -> None:
        """Replace what is shown with ``fig`` (closed in pyplot so it is not drawn twice)."""
        self.figure = fig
        self.clear_output(wait=True)
        with self:
            display(fig)
        plt.close(fig)


def table_html(header: list[str], rows: list[list[object]]) -> str:
    """A small HTML table (cells escaped)."""
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
