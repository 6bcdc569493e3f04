"""Pure plot functions: data in, ``matplotlib`` figure out (usable with or without widgets)."""

from sae_unlearn.viz.capture import plot_norms_per_layer

__all__ = ["plot_norms_per_layer"]
