"""Layer and latent selection: which layer and which SAE latents encode the forget data."""

from sae_unlearn.selection.contexts import TokenContext, latents_on_text, top_activating_contexts
from sae_unlearn.selection.latents import (
    SCORERS,
    LatentSelection,
    LatentStats,
    LatentSums,
    NoForgetLatentsError,
    latent_stats,
    score_latents,
    select_latents,
    stats_from_sums,
)
from sae_unlearn.selection.layers import (
    LayerRule,
    SelectionResult,
    auroc,
    auroc_interval,
    choose_layer,
    select_layer_and_latents,
)

__all__ = [
    "LayerRule",
    "SCORERS",
    "LatentSelection",
    "LatentStats",
    "LatentSums",
    "NoForgetLatentsError",
    "SelectionResult",
    "TokenContext",
    "auroc",
    "auroc_interval",
    "choose_layer",
    "latent_stats",
    "latents_on_text",
    "score_latents",
    "select_latents",
    "select_layer_and_latents",
    "stats_from_sums",
    "top_activating_contexts",
]
