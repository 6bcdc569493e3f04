"""Unlearning methods behind one interface: SSPU (the method), RMU (the baseline)."""

from sae_unlearn.unlearning.base import UnlearningConfig, UnlearningMethod, UnlearningResult, default_params
from sae_unlearn.unlearning.registry import METHODS, get_method
from sae_unlearn.unlearning.rmu import RMU
from sae_unlearn.unlearning.sspu import SSPU, SSPUConfig, out_of_subspace_residual

__all__ = [
    "METHODS",
    "RMU",
    "SSPU",
    "SSPUConfig",
    "UnlearningConfig",
    "UnlearningMethod",
    "UnlearningResult",
    "default_params",
    "get_method",
    "out_of_subspace_residual",
]
