"""Unlearning methods behind one interface and one trainer, looked up by name in a registry.

Built in: SSPU (the method), RMU (the baseline SSPU must beat), and the output-level baselines
GradAscent, GradDiff, NPO, SimNPO and IdkDPO, reasoning-trace unlearning (R²MU, and SSPU with
R²MU's trace terms) for reasoning models, SSPU across layers, the removal-minded TAR, SAM and
UNDO, UniErase (an unlearning token and a null-space model
edit), and the weight-free SAE interventions (static,
zero and conditional clamping, DSG). Importing this package registers them.

Room: the methods, their registry (which method runs on which zoo model) and the one trainer.
Imports the stages below it (``models``, ``data``, ``capture``, ``saes``, ``subspaces``,
``interventions``, ``evaluation``), never ``pipeline``, ``verification`` or ``attacks``.
"""

from sae_unlearn.unlearning.base import (
    TrainConfig,
    UnlearningConfig,
    UnlearningMethod,
    UnlearningResult,
    default_params,
)
from sae_unlearn.unlearning.clamping import (
    DSG,
    ClampConfig,
    ConditionalClamp,
    DSGConfig,
    InterventionMethod,
    StaticClamp,
    ZeroAblation,
)
from sae_unlearn.unlearning.gradient import (
    NPO,
    GradAscent,
    GradAscentConfig,
    GradDiff,
    GradDiffConfig,
    NPOConfig,
    SimNPO,
    SimNPOConfig,
)
from sae_unlearn.unlearning.idkdpo import IdkDPO, IdkDPOConfig
from sae_unlearn.unlearning.r2mu import R2MU, SSPUR2MU, R2MUConfig, SSPUR2MUConfig
from sae_unlearn.unlearning.registry import (
    METHODS,
    get_method,
    method_label,
    method_runs_on,
    register,
    settings_for,
    why_method_cannot_run,
)
from sae_unlearn.unlearning.rmu import RMU
from sae_unlearn.unlearning.sspu import SSPU, SSPUConfig, out_of_subspace_residual
from sae_unlearn.unlearning.steering import SteeringMethod
from sae_unlearn.unlearning.trainer import GradientMethod, TrainRun, train
from sae_unlearn.unlearning.unierase import UniErase, UniEraseConfig  # isort: split

# registered after the methods above, so menus keep their order
from sae_unlearn.unlearning.adversarial import (
    SAMRMU,
    SSPUSAM,
    SSPUTAR,
    TAR,
    SAMConfig,
    SSPUSAMConfig,
    SSPUTARConfig,
    TARConfig,
)
from sae_unlearn.unlearning.sspu_layers import SSPULayers, SSPULayersConfig
from sae_unlearn.unlearning.undo import DistillConfig, Undo, UndoConfig, distill

__all__ = [
    "DSG",
    "SAMRMU",
    "SSPUSAM",
    "SSPUTAR",
    "TAR",
    "SAMConfig",
    "SSPUSAMConfig",
    "SSPUTARConfig",
    "TARConfig",
    "DistillConfig",
    "Undo",
    "UndoConfig",
    "distill",
    "ClampConfig",
    "ConditionalClamp",
    "DSGConfig",
    "InterventionMethod",
    "StaticClamp",
    "ZeroAblation",
    "METHODS",
    "NPO",
    "RMU",
    "UniErase",
    "UniEraseConfig",
    "R2MU",
    "R2MUConfig",
    "SSPUR2MU",
    "SSPUR2MUConfig",
    "SSPU",
    "SSPULayers",
    "SSPULayersConfig",
    "GradAscent",
    "GradAscentConfig",
    "GradDiff",
    "GradDiffConfig",
    "GradientMethod",
    "IdkDPO",
    "IdkDPOConfig",
    "NPOConfig",
    "SSPUConfig",
    "SimNPO",
    "SimNPOConfig",
    "SteeringMethod",
    "TrainConfig",
    "TrainRun",
    "UnlearningConfig",
    "UnlearningMethod",
    "UnlearningResult",
    "default_params",
    "get_method",
    "method_label",
    "method_runs_on",
    "out_of_subspace_residual",
    "register",
    "settings_for",
    "train",
    "why_method_cannot_run",
]
