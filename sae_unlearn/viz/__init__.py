"""Pure plot functions: data in, ``matplotlib`` figure out (usable with or without widgets)."""

from sae_unlearn.viz.capture import plot_norms_per_layer
from sae_unlearn.viz.selection import plot_latent_firing, plot_layer_scores, plot_principal_angles
from sae_unlearn.viz.verification import plot_attacks, plot_logit_lens, plot_relearn, plot_truth_ratios

__all__ = [
    "plot_attacks",
    "plot_latent_firing",
    "plot_layer_scores",
    "plot_logit_lens",
    "plot_norms_per_layer",
    "plot_principal_angles",
    "plot_relearn",
    "plot_truth_ratios",
]
