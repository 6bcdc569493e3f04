"""Unlearning that anticipates the relearning attack: TAR-style adversarial relearning in the
loop, and SAM-smoothed forgetting.

**TAR** (Tamirisa et al. 2024, "Tamper-Resistant Safeguards for Open-Weight LLMs"), small and
first-order: every ``tar_every`` steps an inner adversary fine-tunes a copy of the trained
matrices for ``tar_inner_steps`` SGD steps on the forget texts (next-token loss, learning rate
``tar_inner_lr``), the outer steering loss is taken at the relearned weights, and its gradient
(evaluated there, as first-order MAML does) is added to the step's gradient with weight
``tar_weight``: the update is pushed toward weights from which relearning does not bring the
forget activations back. The adversary here trains only the matrices unlearning trains (TAR's
adversary trains everything, over 64+ steps); the cost is ``1 + tar_inner_steps`` extra
forward/backward passes per adversarial step.

**SAM** (Fan et al. 2025, "Towards LLM Unlearning Resilient to Relearning Attacks: A
Sharpness-Aware Minimization Perspective"): the forget loss is minimised at the worst point of a
ball of radius ``sam_rho`` around the weights (one ascent step along the normalised gradient,
Foret et al. 2021), so the forgetting sits in a flat region that small fine-tuning steps do not
leave. The retain term stays at the weights themselves.

Both are mixins over a steering method: registered as ``tar`` and ``sam_rmu`` (RMU) and
``sspu_tar`` and ``sspu_sam`` (SSPU: the final gradient is still projected onto the relevant
subspace; the adversary is not constrained, as an attacker would not be).

The extra gradient enters the trainer's loss as ``Σ_p ⟨p, g_p⟩`` with ``g_p`` detached, whose
gradient with respect to ``p`` is exactly ``g_p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sae_unlearn.models.loading import TokenBatch
from sae_unlearn.models.training import tokenize_examples, weighted_lm_loss
from sae_unlearn.unlearning.base import UnlearningConfig, activations_with_grad, masked_mse
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.rmu import RMU
from sae_unlearn.unlearning.sspu import SSPU, SSPUConfig
from sae_unlearn.unlearning.trainer import TrainRun
from sae_unlearn.utils import DictConfig, preserved_parameters, seeded_generator


def _surrogate(params: dict[str, torch.nn.Parameter], grads: tuple[Tensor, ...]) -> Tensor:
    """``Σ ⟨p, g⟩`` (``g`` detached): a loss whose gradient is ``g``."""
    return sum((p * g.detach()).sum() for p, g in zip(params.values(), grads, strict=True))  # type: ignore[return-value]


def _forget_steering_loss(method, run: TrainRun, forget: TokenBatch, forget_index: int) -> Tensor:
    fa = activations_with_grad(run.model, forget, method.config.hook)
    target = method.steering_target(run, forget, forget_index)
    return masked_mse(fa, target, forget.attention_mask.to(fa.device))


@dataclass
class TARSettings(DictConfig):
    """The adversary in the loop."""

    tar_every: int = 2
    """Run the adversary every this many steps."""
    tar_inner_steps: int = 4
    """SGD steps of the inner relearning adversary."""
    tar_inner_lr: float = 1e-2
    tar_weight: float = 1.0
    """Weight of the gradient taken at the relearned weights."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tar_every < 1 or self.tar_inner_steps < 1:
            raise ValueError(f"tar_every={self.tar_every} and tar_inner_steps={self.tar_inner_steps} must be >= 1.")
        if self.tar_inner_lr <= 0 or self.tar_weight < 0:
            raise ValueError(f"tar_inner_lr={self.tar_inner_lr} must be > 0 and tar_weight={self.tar_weight} >= 0.")


@dataclass
class TARConfig(TARSettings, UnlearningConfig):
    """TAR on RMU."""


@dataclass
class SSPUTARConfig(TARSettings, SSPUConfig):
    """TAR on SSPU."""


class TARTerms:
    """Adds the adversarial-relearning gradient to a steering method's step."""

    config: TARConfig | SSPUTARConfig

    def setup(self, run: TrainRun) -> None:
        super().setup(run)  # type: ignore[misc]
        data = tokenize_examples(run.model.tokenizer, [("", t) for t in run.forget_texts])
        run.state["tar_data"] = data
        run.state["tar_gen"] = seeded_generator(self.config.seed + 11)
        run.state["tar_calls"] = 0

    def step_loss(self, run: TrainRun, forget, forget_index: int, retain, retain_index: int) -> dict[str, Tensor]:
        cfg = self.config
        run.state["tar_calls"] += 1
        adversarial = cfg.tar_weight > 0 and run.state["tar_calls"] % cfg.tar_every == 0
        # the adversary runs first: it changes the weights in place, which must not happen under the
        # step's own graph
        g_adv, outer = self._adversary(run, forget, forget_index) if adversarial else (None, None)
        terms = super().step_loss(run, forget, forget_index, retain, retain_index)  # type: ignore[misc]
        if g_adv is not None and outer is not None:
            terms["adversarial_loss"] = outer
            terms["loss"] = terms["loss"] + cfg.tar_weight * _surrogate(run.params, g_adv)
        return terms

    def _adversary(self, run: TrainRun, forget: TokenBatch, index: int) -> tuple[tuple[Tensor, ...], Tensor]:
        """Relearn the forget texts from the current weights; the steering loss's gradient there."""
        cfg, params = self.config, run.params
        data, gen = run.state["tar_data"], run.state["tar_gen"]
        with preserved_parameters(params):  # the weights are back as they were when it returns
            for _ in range(cfg.tar_inner_steps):
                idx = torch.randperm(len(data.input_ids), generator=gen)[: cfg.batch_size]
                ids, w = data.input_ids[idx].to(run.model.device), data.loss_weight[idx].to(run.model.device)
                nll = weighted_lm_loss(run.model.logits(ids).float(), ids, w)
                grads = torch.autograd.grad(nll, list(params.values()))
                with torch.no_grad():
                    for p, g in zip(params.values(), grads, strict=True):
                        p.sub_(cfg.tar_inner_lr * g)
            outer = _forget_steering_loss(self, run, forget, index)  # still ignorant after relearning?
            g_adv = torch.autograd.grad(outer, list(params.values()))
        return g_adv, outer.detach()


@dataclass
class SAMSettings(DictConfig):
    """Sharpness-aware forgetting."""

    sam_rho: float = 0.05
    """Radius of the weight perturbation (L2, over all trained matrices)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sam_rho <= 0:
            raise ValueError(f"sam_rho={self.sam_rho} must be > 0.")


@dataclass
class SAMConfig(SAMSettings, UnlearningConfig):
    """SAM on RMU."""


@dataclass
class SSPUSAMConfig(SAMSettings, SSPUConfig):
    """SAM on SSPU."""


class SAMTerms:
    """The forget term's gradient taken at the worst nearby weights."""

    config: SAMConfig | SSPUSAMConfig

    def step_loss(self, run: TrainRun, forget, forget_index: int, retain, retain_index: int) -> dict[str, Tensor]:
        params = run.params
        # the perturbation happens before the step's own graph is built (it changes the weights in place)
        g = torch.autograd.grad(_forget_steering_loss(self, run, forget, forget_index), list(params.values()))
        norm = torch.sqrt(sum(x.pow(2).sum() for x in g)).clamp_min(1e-12)  # type: ignore[arg-type]
        with preserved_parameters(params):
            with torch.no_grad():
                for p, x in zip(params.values(), g, strict=True):
                    p.add_(self.config.sam_rho * x / norm)
            sharp = _forget_steering_loss(self, run, forget, forget_index)
            g_sam = torch.autograd.grad(sharp, list(params.values()))
        terms = super().step_loss(run, forget, forget_index, retain, retain_index)  # type: ignore[misc]
        # the forget term at the perturbed weights replaces the plain one; the retain terms stay
        terms["loss"] = terms["loss"] - terms["forget_loss"] + _surrogate(params, g_sam)
        terms["sharp_forget_loss"] = sharp.detach()
        return terms


@register("tar")
class TAR(TARTerms, RMU):
    """RMU with an inner relearning adversary."""

    label = "TAR"
    description = "RMU trained against an inner relearning adversary (first-order, small)"
    config_class = TARConfig
    config: TARConfig


@register("sspu_tar")
class SSPUTAR(TARTerms, SSPU):
    """SSPU with an inner relearning adversary."""

    label = "SSPU+TAR"
    description = "SSPU trained against an inner relearning adversary; updates stay in the relevant subspace"
    config_class = SSPUTARConfig
    config: SSPUTARConfig

    def __init__(self, relevant, irrelevant, config: SSPUTARConfig | None = None):
        super().__init__(relevant, irrelevant, config or SSPUTARConfig())


@register("sam_rmu")
class SAMRMU(SAMTerms, RMU):
    """RMU with sharpness-aware forgetting."""

    label = "SAM-RMU"
    description = "RMU whose forget term is minimised at the worst nearby weights (SAM)"
    config_class = SAMConfig
    config: SAMConfig


@register("sspu_sam")
class SSPUSAM(SAMTerms, SSPU):
    """SSPU with sharpness-aware forgetting."""

    label = "SSPU+SAM"
    description = "SSPU whose forget term is minimised at the worst nearby weights (SAM)"
    config_class = SSPUSAMConfig
    config: SSPUSAMConfig

    def __init__(self, relevant, irrelevant, config: SSPUSAMConfig | None = None):
        super().__init__(relevant, irrelevant, config or SSPUSAMConfig())
