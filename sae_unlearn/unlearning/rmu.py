"""RMU — Representation Misdirection for Unlearning (Li et al. 2024, "The WMDP Benchmark").

At one layer, forget-data activations are pushed toward a fixed random control vector
``c · u`` (``u`` uniform in [0, 1)^d, normalised), scrambling whatever later layers read from
them, while retain-data activations are held at the frozen model's values (MSE, weight
``alpha``). Only a few MLP output matrices before that layer are updated. RMU is the baseline
SSPU must beat; it runs with the same trainer, data and budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.models.loading import HookedModel
from sae_unlearn.unlearning.base import (
    UnlearningMethod,
    UnlearningResult,
    default_steering_coef,
    steering_train,
)
from sae_unlearn.utils import check_forget_retain, seeded_generator


def rmu_control(d_model: int, coef: float, seed: int) -> Float[Tensor, " d_model"]:
    """``coef · u / ‖u‖`` with ``u`` uniform in [0, 1)^d (seeded)."""
    u = torch.rand(d_model, generator=seeded_generator(seed))
    return coef * u / u.norm()


class RMU(UnlearningMethod):
    """RMU with the shared steering trainer."""

    name = "rmu"

    def apply(
        self,
        model: HookedModel,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        progress: bool = True,
        on_step: Callable[[dict], None] | None = None,
    ) -> UnlearningResult:
        forget_texts, retain_texts = check_forget_retain(forget_texts, retain_texts)
        coef = default_steering_coef(model, forget_texts, self.config)
        control = rmu_control(model.d_model, coef, self.config.seed)
        return steering_train(
            model, forget_texts, retain_texts, self.config, control, self.name, progress=progress, on_step=on_step
        )
