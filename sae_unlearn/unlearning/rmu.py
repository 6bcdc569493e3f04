"""RMU — Representation Misdirection for Unlearning (Li et al. 2024, "The WMDP Benchmark").

At one layer, forget-data activations are pushed toward a fixed random control vector
``c · u`` (``u`` uniform in [0, 1)^d, normalised), scrambling whatever later layers read from
them, while retain-data activations are held at the frozen model's values (MSE, weight
``alpha``). Only a few MLP output matrices before that layer are updated. RMU is the baseline
SSPU must beat; it runs with the same trainer, data and budget.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.models.loading import HookedModel
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.steering import SteeringMethod
from sae_unlearn.utils import seeded_generator


def rmu_control(d_model: int, coef: float, seed: int) -> Float[Tensor, " d_model"]:
    """``coef · u / ‖u‖`` with ``u`` uniform in [0, 1)^d (seeded)."""
    u = torch.rand(d_model, generator=seeded_generator(seed))
    return coef * u / u.norm()


@register("rmu")
class RMU(SteeringMethod):
    """RMU: steer forget activations to a random control vector."""

    label = "RMU"
    description = "forget activations steered to a random vector, retain activations held"

    def control_vector(self, model: HookedModel, coef: float) -> Float[Tensor, " d_model"]:
        return rmu_control(model.d_model, coef, self.config.seed)
