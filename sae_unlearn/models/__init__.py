"""Models: the hooked-model loader, hook-name helpers, and the bundled zoo.

Room: loading any model as a :class:`HookedModel`, hook names, the tokenizer and LM trainer, and the
zoo. Imports only ``data``, ``utils``, ``atomic`` and ``intervention_runtime``; what installs on a
model from above (a saved intervention) registers itself here
(:func:`~sae_unlearn.models.loading.register_intervention_installer`).
"""

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
