"""SAEs per layer: fitting with sae-lens's trainer, quality metrics, splicing, loading."""

from sae_unlearn.saes.config import SAEFitConfig
from sae_unlearn.saes.loading import SAEMismatchError, check_sae_fits, load_sae
from sae_unlearn.saes.metrics import SAEStats, ce_loss_recovered, encode_batched, reconstruction_stats
from sae_unlearn.saes.pretrained import check_pretrained_id, load_gemma_scope_folder, load_saes
from sae_unlearn.saes.splice import ablated, spliced
from sae_unlearn.saes.training import FittedSAEs, fit_saes, load_fitted_saes

__all__ = [
    "FittedSAEs",
    "SAEFitConfig",
    "SAEMismatchError",
    "SAEStats",
    "ablated",
    "ce_loss_recovered",
    "check_pretrained_id",
    "check_sae_fits",
    "encode_batched",
    "fit_saes",
    "load_fitted_saes",
    "load_gemma_scope_folder",
    "load_sae",
    "load_saes",
    "reconstruction_stats",
    "spliced",
]
