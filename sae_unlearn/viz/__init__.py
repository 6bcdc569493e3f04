"""Pure plot functions: data in, ``matplotlib`` figure out (usable with or without widgets)."""

from sae_unlearn.viz.capture import plot_norms_per_layer
from sae_unlearn.viz.selection import plot_latent_firing, plot_layer_scores, plot_principal_angles

__all__ = ["plot_latent_firing", "plot_layer_scores", "plot_norms_per_layer", "plot_principal_angles"]
