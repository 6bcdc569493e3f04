"""Small HTML tables: data in, HTML out (shown by a notebook cell, or read as a string).

:func:`table_html` builds the markup (widgets put it in an ``ipywidgets.HTML``);
the ``*_table`` functions return an ``IPython.display.HTML``, which a notebook renders as
the last expression of a cell and whose ``.data`` is the markup for scripts and tests.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from IPython.display import HTML

from sae_unlearn.saes.metrics import SAEStats


def table_html(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A small HTML table (cells escaped)."""
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sae_stats_rows(stats: Mapping[str, SAEStats]) -> list[list[str]]:
    """One row per SAE: hook, L0, explained variance, dead fraction (formatted for a table)."""
    return [[hook, f"{s.l0:.1f}", f"{s.explained_variance:.3f}", f"{s.dead_fraction:.1%}"] for hook, s in stats.items()]


def sae_stats_table(stats: Mapping[str, SAEStats]) -> HTML:
    """The quality of each fitted SAE as a table (e.g. ``sae_stats_table(fit.stats)``).

    Columns: hook, L0 (mean active latents per token), explained variance of the activations,
    and the share of latents that never fire (see :mod:`sae_unlearn.saes.metrics`).
    """
    if not stats:
        raise ValueError("no SAE statistics given.")
    header = ["hook", "L0", "explained variance", "dead latents"]
    return HTML(table_html(header, sae_stats_rows(stats)))
