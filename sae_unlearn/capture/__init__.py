"""Activation capture: hook points in one forward pass per batch, in memory or on disk.

Room: running a model to its hook points and keeping (or streaming) the activations. Imports only
``models``, ``data``, ``utils`` and ``atomic``.
"""

from sae_unlearn.capture.capture import ActivationBatch, capture_activations, iter_activations, run_and_capture
from sae_unlearn.capture.store import ActivationStore

__all__ = ["ActivationBatch", "ActivationStore", "capture_activations", "iter_activations", "run_and_capture"]
