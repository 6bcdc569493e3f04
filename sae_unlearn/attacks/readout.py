"""Hidden activations where a question's answer is predicted, shared by the probe and the logit lens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from sae_unlearn.capture.capture import run_and_capture
from sae_unlearn.models.loading import HookedModel


@dataclass
class AnswerPositions:
    """Residual stream where each answer token is predicted (the first row per pair: the prompt's last token)."""

    acts: dict[str, Float[Tensor, "n_tok d_model"]]
    """Residual stream at each position that predicts an answer token."""
    target: Int[Tensor, " n_tok"]
    """The answer token predicted there."""
    seq: Int[Tensor, " n_tok"]
    """Which (prompt, answer) pair the position belongs to."""


@torch.no_grad()
def answer_positions(
    model: HookedModel, prompts: Sequence[str], answers: Sequence[str], hooks: Sequence[str], batch_size: int
) -> AnswerPositions:
    """Activations at every position that predicts an answer token, for each (prompt, answer) pair."""
    if len(prompts) != len(answers) or len(prompts) == 0:
        raise ValueError(f"give as many answers as prompts (got {len(prompts)} and {len(answers)}), at least one.")
    hooks = model.validate_hooks(list(hooks))
    acts: dict[str, list[Tensor]] = {h: [] for h in hooks}
    targets, seqs = [], []
    for start in range(0, len(prompts), batch_size):
        ps, ans = prompts[start : start + batch_size], answers[start : start + batch_size]
        batch = model.tokenize([p + a for p, a in zip(ps, ans, strict=True)])
        cap = run_and_capture(model, batch.input_ids, hooks)
        for i, p in enumerate(ps):
            n, length = len(model.tokenizer(p)["input_ids"]), int(batch.attention_mask[i].sum())
            pos = torch.arange(n - 1, max(length - 1, n))
            targets.append(batch.input_ids[i, pos + 1])
            seqs.append(torch.full((len(pos),), start + i))
            for h in hooks:
                acts[h].append(cap[h][i, pos].float().cpu())
    return AnswerPositions({h: torch.cat(v) for h, v in acts.items()}, torch.cat(targets), torch.cat(seqs))
