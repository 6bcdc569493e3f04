"""Logit lens (nostalgebraist 2020): decode every layer's residual stream with the model's own
final norm and unembedding, at the position where the answer is predicted.

An unlearning method that only scrambles the last layers' output can leave the answer readable
from an earlier layer; comparing with the retain oracle layer by layer shows it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sae_unlearn.attacks.base import AttackContext, AttackResult, LayeredAttack, Score, max_score, register_attack
from sae_unlearn.attacks.probe import lens_logprobs
from sae_unlearn.attacks.readout import answer_positions
from sae_unlearn.data.splits import QAPair
from sae_unlearn.models.hooks import resid_post
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import DictConfig


@dataclass
class LogitLensResult:
    """Per layer: how often the answer's first token is the top prediction, and its mean log-probability."""

    top1: dict[int, float]
    """Layer → fraction of items whose answer's first token is the top-1 decoded token."""
    logprob: dict[int, float]
    """Layer → mean log-probability of the answer's first token."""

    @property
    def max_top1(self) -> float:
        """The attack's strength: the best layer's top-1 accuracy."""
        return max(self.top1.values())


@torch.no_grad()
def logit_lens(model: HookedModel, items: Sequence[QAPair], batch_size: int = 64) -> LogitLensResult:
    """Decode ``blocks.{l}.hook_resid_post`` at each item's last prompt token for every layer.

    The answer token is the first token of ``" " + target`` when the item has a target (the
    value itself, e.g. ``" Lisbon"``), else the first token of its answer.
    """
    if len(items) == 0:
        raise ValueError("no items given to the logit lens.")
    hooks = [resid_post(layer) for layer in range(model.n_layers)]
    answers = [f" {q.target}" if q.target else q.answer for q in items]
    pos = answer_positions(model, [q.prompt for q in items], answers, hooks, batch_size)
    first = torch.ones_like(pos.seq, dtype=torch.bool)
    first[1:] = pos.seq[1:] != pos.seq[:-1]  # the prompt's last token of each item
    target = pos.target[first]
    top1, logprob = {}, {}
    for layer, h in enumerate(hooks):
        lp = lens_logprobs(model, pos.acts[h][first]).cpu()
        top1[layer] = float((lp.argmax(-1) == target).float().mean())
        logprob[layer] = float(lp.gather(-1, target[:, None]).mean())
    return LogitLensResult(top1=top1, logprob=logprob)


@dataclass
class LogitLensConfig(DictConfig):
    """The logit lens has nothing to set."""


@register_attack
class LogitLensAttack(LayeredAttack):
    """The answer's first token as the top-1 decoded token at each layer's last prompt position."""

    name = "logit_lens"
    title = "logit lens"
    Config = LogitLensConfig
    order = 50

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict:
        return {"logit_lens_max_top1": max_score(result)}

    def run(self, model, data, context: AttackContext) -> AttackResult:
        t0 = time.perf_counter()
        lens = logit_lens(model, data.split.forget, context.batch_size)
        n = len(data.split.forget)
        scores = {f"layer {layer}": Score(v, n) for layer, v in lens.top1.items()}
        details = {"top1": lens.top1, "logprob": lens.logprob, "max_top1": lens.max_top1}
        return AttackResult(scores, details, time.perf_counter() - t0)
