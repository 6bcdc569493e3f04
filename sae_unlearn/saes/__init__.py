"""SAEs per layer: fitting with sae-lens's trainer, quality metrics, splicing, loading.

Room: SAEs as objects: fitting, reading pretrained ones as they were trained, metrics, splicing.
Imports ``capture``, ``models`` and the ground (``utils``, ``atomic``, ``intervention_runtime``).
"""

from sae_unlearn.saes.config import SAEFitConfig
from sae_unlearn.saes.inputs import (
    SAEInputSpec,
    SAEMetadataWarning,
    fold_norm_scaling_factor,
    prepare_sae_input,
    sae_encode,
    sae_input_spec,
)
from sae_unlearn.saes.loading import SAEMismatchError, check_sae_fits, load_sae
from sae_unlearn.saes.metrics import SAEStats, ce_loss_recovered, encode_batched, reconstruction_stats
from sae_unlearn.saes.pretrained import check_pretrained_id, load_gemma_scope_folder, load_llama_scope_folder, load_saes
from sae_unlearn.saes.splice import ablated, spliced
from sae_unlearn.saes.training import FittedSAEs, fit_saes, load_fitted_saes

__all__ = [
    "FittedSAEs",
    "SAEFitConfig",
    "SAEInputSpec",
    "SAEMetadataWarning",
    "SAEMismatchError",
    "SAEStats",
    "ablated",
    "ce_loss_recovered",
    "check_pretrained_id",
    "check_sae_fits",
    "encode_batched",
    "fit_saes",
    "fold_norm_scaling_factor",
    "load_fitted_saes",
    "load_gemma_scope_folder",
    "load_llama_scope_folder",
    "load_sae",
    "load_saes",
    "prepare_sae_input",
    "reconstruction_stats",
    "sae_encode",
    "sae_input_spec",
    "spliced",
]
