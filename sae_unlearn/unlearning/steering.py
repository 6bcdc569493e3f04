"""Activation steering, the loss RMU and SSPU share.

At one hook, forget-data activations are pushed toward a fixed control vector (MSE), while
retain-data activations are held at the frozen model's values (MSE, weight ``alpha``). The
control vector's norm is ``steering_scale`` × the mean forget activation norm at the hook
(or ``steering_coef``). A subclass chooses the control vector's direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.capture.capture import forward_to_hooks
from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.unlearning.base import (
    UnlearningConfig,
    UnlearningResult,
    activations_with_grad,
    make_batches,
    masked_mse,
)
from sae_unlearn.unlearning.trainer import GradientMethod, TrainRun


def steering_coefs(
    model: HookedModel, forget_texts: Sequence[str], config: UnlearningConfig, hooks: Sequence[str]
) -> dict[str, float]:
    """``steering_scale`` × mean norm of the forget activations at each hook (or the fixed
    coefficient), from one forward pass per batch over the first 4 batches of 64 texts."""
    if config.steering_coef is not None:
        return {h: float(config.steering_coef) for h in hooks}
    norms: dict[str, list[Tensor]] = {h: [] for h in hooks}
    with torch.no_grad():
        for b in make_batches(model, forget_texts, 64, config.seed)[:4]:
            acts = forward_to_hooks(model, b.input_ids, list(hooks))
            for h in hooks:
                norms[h].append(acts[h].norm(dim=-1)[b.attention_mask.bool().to(acts[h].device)])
    coefs = {h: config.steering_scale * float(torch.cat(norms[h]).mean()) for h in hooks}
    if not all(math.isfinite(c) for c in coefs.values()):
        raise FloatingPointError("mean forget activation norm is not finite; check the model.")
    return coefs


def default_steering_coef(model: HookedModel, forget_texts: Sequence[str], config: UnlearningConfig) -> float:
    """``steering_scale`` × mean norm of the forget activations at the hook (or the fixed coefficient)."""
    return steering_coefs(model, forget_texts, config, [config.hook])[config.hook]


class SteeringMethod(GradientMethod):
    """Forget activations at ``config.hook`` → a control vector; retain activations → frozen values."""

    config: UnlearningConfig
    config_class: type[UnlearningConfig] = UnlearningConfig

    def control_vector(self, model: HookedModel, coef: float) -> Float[Tensor, " d_model"]:
        """The control vector of norm ``coef`` (its direction is the method's choice)."""
        raise NotImplementedError

    def steering_target(
        self, run: TrainRun, forget: TokenBatch, forget_index: int
    ) -> Float[Tensor, "batch pos d_model"] | Float[Tensor, " d_model"]:
        """Where the forget batch's activations at the hook are steered: the control vector (a
        method with a per-token target, e.g. SSPU's ``target="mean_ablation"``, overrides this)."""
        return run.state["control"]

    def setup(self, run: TrainRun) -> None:
        coef = default_steering_coef(run.model, run.forget_texts, self.config)
        run.state["control"] = self.control_vector(run.model, coef).to(run.model.device)
        run.state["frozen"] = [activations_with_grad(run.model, b, self.config.hook) for b in run.retain_batches]

    def step_loss(
        self, run: TrainRun, forget: TokenBatch, forget_index: int, retain: TokenBatch, retain_index: int
    ) -> dict[str, Tensor]:
        hook = self.config.hook
        fa = activations_with_grad(run.model, forget, hook)
        ra = activations_with_grad(run.model, retain, hook)
        target = self.steering_target(run, forget, forget_index)
        forget_loss = masked_mse(fa, target, forget.attention_mask.to(fa.device))
        retain_loss = masked_mse(ra, run.state["frozen"][retain_index], retain.attention_mask.to(ra.device))
        return {
            "loss": forget_loss + self.config.alpha * retain_loss,
            "forget_loss": forget_loss,
            "retain_loss": retain_loss,
        }

    def finish(self, run: TrainRun, result: UnlearningResult) -> None:
        result.steering_coef = float(run.state["control"].norm())
