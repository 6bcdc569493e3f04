"""The figure every plot function returns: a matplotlib ``Figure`` that pyplot never sees.

A figure made with ``plt.subplots`` is registered with pyplot, and IPython's ``post_execute``
hook redraws every registered figure. In JupyterLab 4.6 with ipykernel 7, widget messages are
handled on a second kernel thread ("comms over subshells"), so that redraw can run while a widget
callback is still building its figure on the main thread; matplotlib's text layout is not
thread-safe and one of the two draws fails. A :class:`PlotFigure` is never registered, so nothing
but its owner draws it. It shows itself in a notebook through ``_repr_png_`` (the last expression
of a cell, or ``display(fig)``), and is garbage-collected like any object (no ``plt.close``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from sae_unlearn.atomic import atomic_file


class PlotFigure(Figure):
    """A ``matplotlib.figure.Figure`` not registered with pyplot that renders itself as PNG in notebooks."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def new_figure(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float | int, float | int] | None = None, **kwargs: Any
) -> Any:
    """``(fig, axes)`` like ``plt.subplots``, but the figure is a :class:`PlotFigure` outside pyplot."""
    fig = PlotFigure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (a kill never leaves a half-written image)."""
    path = Path(path)
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return path
