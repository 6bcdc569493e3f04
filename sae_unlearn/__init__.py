"""sae-unlearn: SAE-guided subspace projection unlearning (SSPU) for language models.

The pipeline, one sub-package per stage: ``models`` (hooked loader and zoo) → ``capture``
(activations at hook points) → SAEs → selection → subspaces → unlearning → ``evaluation``
→ export. ``python -m sae_unlearn demo --out DIR`` runs it end to end.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sae_unlearn.capture import ActivationStore, capture_activations, iter_activations
    from sae_unlearn.data import QAPair, SecretsCorpus, UnlearningSplit, load_tofu_split
    from sae_unlearn.evaluation import evaluate_knowledge
    from sae_unlearn.models import HookedModel, load_model, load_zoo_model, zoo_model_path, zoo_split

# Imported on first use (PEP 562), so ``import sae_unlearn.atomic`` and the command line's
# ``--help`` do not pay for torch, transformers and TransformerLens.
_LAZY = {
    "ActivationStore": "sae_unlearn.capture",
    "capture_activations": "sae_unlearn.capture",
    "iter_activations": "sae_unlearn.capture",
    "QAPair": "sae_unlearn.data",
    "SecretsCorpus": "sae_unlearn.data",
    "UnlearningSplit": "sae_unlearn.data",
    "load_tofu_split": "sae_unlearn.data",
    "evaluate_knowledge": "sae_unlearn.evaluation",
    "HookedModel": "sae_unlearn.models",
    "load_model": "sae_unlearn.interventions",  # models' load_model, with saved interventions installable
    "load_zoo_model": "sae_unlearn.models",
    "zoo_model_path": "sae_unlearn.models",
    "zoo_split": "sae_unlearn.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sae_unlearn' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ActivationStore",
    "HookedModel",
    "QAPair",
    "SecretsCorpus",
    "UnlearningSplit",
    "capture_activations",
    "evaluate_knowledge",
    "iter_activations",
    "load_model",
    "load_tofu_split",
    "load_zoo_model",
    "zoo_model_path",
    "zoo_split",
]
