"""The output-level baselines of the unlearning literature, as OpenUnlearning defines them.

Each works on the model's next-token log-likelihood of the forget (and retain) texts, not on
activations, and trains the same matrices as RMU/SSPU by default (the MLP output matrices of the
selected layer and the two before it) with the same budget, through the same trainer:

- **GradAscent**: maximise the forget NLL (``loss = −NLL_forget``). No retain term: it usually
  collapses the model, which is why the guard exists.
- **GradDiff**: ``γ · (−NLL_forget) + α · NLL_retain``.
- **NPO** (Zhang et al. 2024, "Negative Preference Optimization"): the forget term is
  ``−(2/β) · log σ(−β · (log π_θ(y) − log π_ref(y)))`` with sequence log-probabilities and the
  frozen model as reference (β = 0.1), bounded where gradient ascent is not; plus ``α · NLL_retain``.
- **SimNPO** (Fan et al. 2024, "Simplicity Prevails"): reference-free and length-normalised,
  ``−(2/β) · log σ(β · (NLL_forget / |y| − δ))`` (β = 4.5, δ = 0), forget weight γ = 0.125, plus
  ``α · NLL_retain``.
- **IdkDPO** (:mod:`sae_unlearn.unlearning.idkdpo`): DPO with a refusal as the preferred answer.

The NLL of a text is summed over its real tokens after the first (the whole statement: the
forget corpora mix statements and question-answer lines); ``NLL_retain`` is the token mean. The
frozen reference is the model before the first step: its log-probabilities of every forget
batch are computed once, so no second copy of the model is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.unlearning.base import TrainConfig
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.trainer import GradientMethod, TrainRun


def batch_nll(
    model: HookedModel, batch: TokenBatch, targets: Int[Tensor, "batch pos"] | None = None
) -> tuple[Float[Tensor, " batch"], Float[Tensor, " batch"]]:
    """Per sequence of a right-padded batch: the summed next-token NLL and the number of target
    tokens. ``targets`` marks which tokens count (position ``t``: predicting token ``t``; default
    every real token after the first)."""
    ids = batch.input_ids.to(model.device)
    mask = batch.attention_mask.to(model.device)
    logits = model.logits(ids, mask)
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")
    m = (mask if targets is None else targets.to(model.device))[:, 1:].to(nll.dtype)
    nll = nll.view_as(m) * m
    return nll.sum(-1), m.sum(-1)


def mean_token_nll(model: HookedModel, batch: TokenBatch) -> Float[Tensor, ""]:
    """Mean next-token NLL over the real tokens of a batch (the retain term)."""
    total, count = batch_nll(model, batch)
    return total.sum() / count.sum().clamp_min(1)


@dataclass
class GradAscentConfig(TrainConfig):
    """Gradient ascent: nothing beyond the shared settings."""

    lr: float = 1e-3
    """AdamW learning rate (ascent diverges fast: lower than the steering methods')."""


@register("grad_ascent")
class GradAscent(GradientMethod):
    """Maximise the forget NLL; no retain term."""

    label = "GradAscent"
    description = "maximise the forget texts' NLL (no retain term)"
    config_class = GradAscentConfig
    config: GradAscentConfig

    def step_loss(self, run: TrainRun, forget, forget_index, retain, retain_index) -> dict[str, Tensor]:
        forget_nll = mean_token_nll(run.model, forget)
        with torch.no_grad():
            retain_nll = mean_token_nll(run.model, retain)
        return {"loss": -forget_nll, "forget_loss": forget_nll, "retain_loss": retain_nll}


@dataclass
class GradDiffConfig(TrainConfig):
    """Settings of the methods with a forget term and a retain NLL term."""

    lr: float = 1e-3
    """AdamW learning rate."""
    forget_weight: float = 1.0
    """γ: weight of the forget term."""
    retain_weight: float = 1.0
    """α: weight of the retain NLL."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("forget_weight", "retain_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")


@register("grad_diff")
class GradDiff(GradientMethod):
    """Ascent on the forget NLL, descent on the retain NLL."""

    label = "GradDiff"
    description = "ascent on the forget NLL, descent on the retain NLL"
    config_class: type[GradDiffConfig] = GradDiffConfig
    config: GradDiffConfig

    def forget_term(self, run: TrainRun, forget: TokenBatch, forget_index: int) -> Float[Tensor, ""]:
        """The forget loss to minimise (here the negated mean token NLL)."""
        return -mean_token_nll(run.model, forget)

    def step_loss(self, run: TrainRun, forget, forget_index, retain, retain_index) -> dict[str, Tensor]:
        forget_loss = self.forget_term(run, forget, forget_index)
        retain_loss = mean_token_nll(run.model, retain)
        loss = self.config.forget_weight * forget_loss + self.config.retain_weight * retain_loss
        return {"loss": loss, "forget_loss": forget_loss, "retain_loss": retain_loss}


@dataclass
class NPOConfig(GradDiffConfig):
    """NPO's settings (OpenUnlearning's defaults: β = 0.1, γ = α = 1)."""

    lr: float = 2e-3
    """AdamW learning rate (provisional, from the lr sweep on secrets in benchmarks/unlearning.md)."""
    beta: float = 0.1
    """Inverse temperature of the log-sigmoid."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"beta={self.beta} must be > 0.")


@register("npo")
class NPO(GradDiff):
    """Negative preference optimisation against the frozen model."""

    label = "NPO"
    description = "forget sequences made less likely than under the frozen model (bounded)"
    config_class = NPOConfig
    config: NPOConfig

    def setup(self, run: TrainRun) -> None:
        run.state["reference_nll"] = [batch_nll(run.model, b)[0] for b in run.forget_batches]

    def forget_term(self, run: TrainRun, forget: TokenBatch, forget_index: int) -> Float[Tensor, ""]:
        nll, _ = batch_nll(run.model, forget)
        log_ratio = run.state["reference_nll"][forget_index] - nll  # log π_θ(y) − log π_ref(y)
        beta = self.config.beta
        return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


@dataclass
class SimNPOConfig(NPOConfig):
    """SimNPO's settings (OpenUnlearning's defaults: β = 4.5, γ = 0.125, δ = 0, α = 1)."""

    lr: float = 2e-2
    """AdamW learning rate (its forget term weighs 1/8 of GradDiff's; provisional, from the lr sweep
    on secrets in benchmarks/unlearning.md)."""
    forget_weight: float = 0.125
    """γ: weight of the forget term."""
    beta: float = 4.5
    """Inverse temperature of the log-sigmoid."""
    delta: float = 0.0
    """Margin subtracted from the length-normalised NLL."""


@register("simnpo")
class SimNPO(GradDiff):
    """Reference-free, length-normalised NPO."""

    label = "SimNPO"
    description = "NPO without a reference, length-normalised"
    config_class = SimNPOConfig
    config: SimNPOConfig

    def forget_term(self, run: TrainRun, forget: TokenBatch, forget_index: int) -> Float[Tensor, ""]:
        nll, count = batch_nll(run.model, forget)
        beta = self.config.beta
        return -(2.0 / beta) * F.logsigmoid(beta * (nll / count.clamp_min(1) - self.config.delta)).mean()
