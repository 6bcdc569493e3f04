"""HTML tables of :mod:`sae_unlearn.viz.tables` (no model needed)."""

import pytest

from sae_unlearn.saes.metrics import SAEStats
from sae_unlearn.viz import sae_stats_table
from sae_unlearn.viz.tables import sae_stats_rows, table_html


def test_table_html_escapes_cells():
    out = table_html(["a<b"], [["<script>", 1]])
    assert "a&lt;b" in out and "&lt;script&gt;" in out and "<script>" not in out
    assert out.count("<tr>") == 2  # the header row and one body row


def test_sae_stats_table_has_one_row_per_sae():
    stats = {
        "blocks.0.hook_resid_post": SAEStats(
            l0=31.96, explained_variance=0.98765, dead_fraction=0.3012, mse=0.1, n_tokens=9
        ),
        "blocks.1.hook_resid_post": SAEStats(l0=16.0, explained_variance=0.5, dead_fraction=0.0, mse=0.2, n_tokens=9),
    }
    assert sae_stats_rows(stats) == [
        ["blocks.0.hook_resid_post", "32.0", "0.988", "30.1%"],
        ["blocks.1.hook_resid_post", "16.0", "0.500", "0.0%"],
    ]
    html = sae_stats_table(stats).data  # an IPython HTML object: a notebook renders it, a script reads .data
    assert html.count("<tr>") == 3 and "explained variance" in html and "dead latents" in html and "30.1%" in html
    with pytest.raises(ValueError, match="no SAE statistics"):
        sae_stats_table({})
