"""Plot functions return figures pyplot never sees (no cross-thread redraw) that show themselves as PNG."""

import matplotlib.pyplot as plt

from sae_unlearn.viz import plot_layer_scores, plot_norms_per_layer
from sae_unlearn.viz.figure import PlotFigure


def test_figures_are_outside_pyplot_and_render_as_png():
    before = plt.get_fignums()
    figs = [
        plot_norms_per_layer({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.5}),
        plot_layer_scores(
            {"blocks.0.hook_resid_post": 0.9, "blocks.1.hook_resid_post": 0.95}, "blocks.1.hook_resid_post"
        ),
    ]
    assert plt.get_fignums() == before  # nothing registered: IPython's post_execute redraw cannot touch them
    for fig in figs:
        assert isinstance(fig, PlotFigure)
        png = fig._repr_png_()
        assert png.startswith(b"\x89PNG") and len(png) > 2000
