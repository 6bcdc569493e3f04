"""Layer and latent selection: which layer and which SAE latents encode the forget data.

Room: which layer and which latents encode the forget data, and the SAE stage's config
(:class:`~sae_unlearn.selection.config.SAEStageConfig`). Imports ``saes``, ``capture``, ``models``,
``utils``.
"""

from sae_unlearn.selection.config import LayerRule, SAEStageConfig
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
    "SAEStageConfig",
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
