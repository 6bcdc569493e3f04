"""sae-unlearn: SAE-guided subspace projection unlearning (SSPU) for language models.

The pipeline, one sub-package per stage: ``models`` (hooked loader and zoo) → ``capture``
(activations at hook points) → SAEs → selection → subspaces → unlearning → ``evaluation``
→ export. ``python -m sae_unlearn demo --out DIR`` runs it end to end.
"""

from sae_unlearn.capture import ActivationStore, capture_activations, iter_activations
from sae_unlearn.data import QAPair, SecretsCorpus, UnlearningSplit, load_tofu_split
from sae_unlearn.evaluation import evaluate_knowledge
from sae_unlearn.models import HookedModel, load_model, load_zoo_model, zoo_model_path, zoo_split

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
