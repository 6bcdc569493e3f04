"""Pure plot functions: data in, ``matplotlib`` figure out (usable with or without widgets);
and small HTML tables (:mod:`sae_unlearn.viz.tables`).

Room: plots and tables from data. Imports only ``saes`` (types) and ``atomic``.
"""

from sae_unlearn.viz.capture import plot_norm_histograms, plot_norms_per_layer
from sae_unlearn.viz.reasoning import plot_rates, plot_refusals, plot_traces
from sae_unlearn.viz.selection import (
    plot_activation_histogram,
    plot_latent_firing,
    plot_layer_scores,
    plot_principal_angles,
    plot_score_ranking,
)
from sae_unlearn.viz.tables import sae_stats_table
from sae_unlearn.viz.training import plot_sae_training, plot_unlearning_history
from sae_unlearn.viz.verification import (
    plot_attacks,
    plot_layer_excess,
    plot_logit_lens,
    plot_methods_relearn,
    plot_relearn,
    plot_relearn_grid,
    plot_truth_ratios,
)

__all__ = [
    "plot_activation_histogram",
    "plot_norm_histograms",
    "plot_sae_training",
    "plot_score_ranking",
    "plot_unlearning_history",
    "plot_attacks",
    "plot_latent_firing",
    "plot_layer_excess",
    "plot_layer_scores",
    "plot_methods_relearn",
    "plot_relearn_grid",
    "plot_logit_lens",
    "plot_norms_per_layer",
    "plot_principal_angles",
    "plot_relearn",
    "plot_rates",
    "plot_refusals",
    "plot_traces",
    "plot_truth_ratios",
    "sae_stats_table",
]
