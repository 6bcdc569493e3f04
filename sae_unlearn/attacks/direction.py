"""Direction ablation (Łucki et al. 2024, "An Adversarial Perspective on Machine Unlearning for
AI Safety"; Arditi et al. 2024 for the technique): RMU-style methods make the model write one
large direction into the residual stream on forget inputs, and projecting that direction out at
inference gives most of the knowledge back.

Per layer ``l`` the direction is the mean difference, over the real tokens of the forget
*questions* (what an attacker has; never the answers), between

- the attacked model's residual stream and the original model's, when the original is known
  (``AttackContext.reference``): the direction unlearning added;
- otherwise the attacked model's own forget and retain questions (difference in means).

The attack projects ``h ← h − (h·d̂) d̂`` out of ``blocks.{l}.hook_resid_post`` at one layer at a
time and at every layer at once, and asks the forget questions each way; the attacker takes the
best (the oracle gets the same, with its own directions).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.attacks.base import AttackContext, AttackResult, LayeredAttack, Score, max_score, register_attack
from sae_unlearn.capture.capture import run_and_capture
from sae_unlearn.models.hooks import resid_post
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import DictConfig


@torch.no_grad()
def _mean_resid(
    model: HookedModel, texts: Sequence[str], hooks: list[str], batch_size: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Per hook: the sum and count of the residual stream over real tokens (BOS left out), and
    the per-token rows for a paired difference."""
    rows: dict[str, list[Tensor]] = {h: [] for h in hooks}
    for start in range(0, len(texts), batch_size):
        batch = model.tokenize(list(texts[start : start + batch_size]))
        cap = run_and_capture(model, batch.input_ids, hooks)
        mask = batch.attention_mask.bool().clone()
        mask[:, 0] = False
        for h in hooks:
            rows[h].append(cap[h][mask.to(cap[h].device)].float().cpu())
    cat = {h: torch.cat(v) for h, v in rows.items()}
    return {h: v.mean(0) for h, v in cat.items()}, cat


def ablation_directions(
    model: HookedModel,
    forget_prompts: Sequence[str],
    reference: HookedModel | None = None,
    retain_prompts: Sequence[str] = (),
    batch_size: int = 64,
) -> dict[int, Float[Tensor, " d_model"]]:
    """Layer → unit direction the model writes on ``forget_prompts`` (see the module docstring)."""
    hooks = [resid_post(layer) for layer in range(model.n_layers)]
    mean_f, rows_f = _mean_resid(model, forget_prompts, hooks, batch_size)
    if reference is not None:
        _, rows_ref = _mean_resid(reference, forget_prompts, hooks, batch_size)
        diffs = {h: (rows_f[h] - rows_ref[h]).mean(0) for h in hooks}
    else:
        if not retain_prompts:
            raise ValueError("without a reference model the direction is forget minus retain: give retain_prompts.")
        mean_r, _ = _mean_resid(model, retain_prompts, hooks, batch_size)
        diffs = {h: mean_f[h] - mean_r[h] for h in hooks}
    return {layer: diffs[h] / diffs[h].norm().clamp_min(1e-12) for layer, h in enumerate(hooks)}


def projection_hook(direction: Float[Tensor, " d_model"]):
    """A TransformerLens hook that removes ``direction`` (unit) from the activation."""

    def hook(x: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens hook signature
        d = direction.to(x.device, x.dtype)
        return x - (x @ d)[..., None] * d

    return hook


@dataclass
class DirectionAblationConfig(DictConfig):
    """Where the directions are projected out."""

    per_layer: bool = True
    """Also ablate one layer at a time (besides every layer at once)."""


@register_attack
class DirectionAblationAttack(LayeredAttack):
    """Project the unlearning direction out of the residual stream, then ask the forget questions."""

    name = "direction_ablation"
    title = "direction ablation"
    Config = DirectionAblationConfig
    order = 20

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict:
        return {"direction_ablation_max": max_score(result)}

    config: DirectionAblationConfig

    def run(self, model, data, context: AttackContext) -> AttackResult:
        from sae_unlearn.evaluation.knowledge import evaluate_knowledge

        t0 = time.perf_counter()
        forget = data.split.forget
        dirs = ablation_directions(
            model,
            [q.prompt for q in forget],
            context.reference,
            [q.prompt for q in data.split.retain],
            context.batch_size,
        )
        sets = {"all layers": list(dirs)}
        if self.config.per_layer:
            sets |= {f"layer {layer}": [layer] for layer in dirs}
        scores = {}
        for label, layers in sets.items():
            hooks = [(resid_post(layer), projection_hook(dirs[layer])) for layer in layers]
            with model.bridge.hooks(fwd_hooks=hooks):
                acc = evaluate_knowledge(model, forget, batch_size=context.batch_size).known_fraction
            scores[label] = Score(acc, len(forget))
        details = {
            "direction_from": "difference to the original model"
            if context.reference is not None
            else "forget minus retain questions",
            "per_set": {k: s.value for k, s in scores.items()},
        }
        return AttackResult(scores, details, time.perf_counter() - t0)
