"""Models: the hooked-model loader, hook-name helpers, and the bundled zoo."""

from sae_unlearn.models.hooks import HookNameError, hook_layer, resid_post, validate_hook_names
from sae_unlearn.models.loading import HookedModel, TokenBatch, load_model
from sae_unlearn.models.zoo import ZOO, load_zoo_model, zoo_card, zoo_model_path, zoo_split

__all__ = [
    "ZOO",
    "HookNameError",
    "HookedModel",
    "TokenBatch",
    "hook_layer",
    "load_model",
    "load_zoo_model",
    "resid_post",
    "validate_hook_names",
    "zoo_card",
    "zoo_model_path",
    "zoo_split",
]
