"""Benign relearning (Hu et al. 2024, "Unlearning or Obfuscating? Jogging the Memory of
Unlearned LLMs via Benign Relearning").

Fine-tune the whole unlearned model for a few steps on a small set of text *related* to the
forget set that does not state the evaluated facts (other facts about the same people), and
measure how much of the evaluated knowledge returns after each step count. Knowledge that was
only hidden comes back quickly; knowledge that was removed does not come back faster than in the
retain oracle fine-tuned on the same text. The model's weights are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from sae_unlearn.models.loading import HookedModel
from sae_unlearn.models.training import tokenize_examples, weighted_lm_loss
from sae_unlearn.utils import DictConfig, preserved_parameters, seeded_generator


@dataclass
class RelearnConfig(DictConfig):
    """How the relearning attack fine-tunes."""

    steps: tuple[int, ...] = (0, 10, 50)
    """Step counts at which the evaluated facts are measured (cumulative; 0 = before fine-tuning)."""
    lr: float = 1e-3
    """AdamW learning rate (all parameters)."""
    batch_size: int = 8
    """Relearning texts per step."""
    seed: int = 0
    """Seed of the batch order."""

    def __post_init__(self) -> None:
        self.steps = tuple(self.steps) if isinstance(self.steps, list | tuple) else self.steps
        super().__post_init__()
        self.steps = tuple(sorted(set(self.steps)))
        if not self.steps or self.steps[0] < 0:
            raise ValueError(f"steps={self.steps}: give non-negative step counts, e.g. (0, 10, 50).")
        if self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"lr={self.lr} and batch_size={self.batch_size} must be positive.")


def relearn_sweep(
    model: HookedModel,
    texts: Sequence[str],
    evaluate: Callable[[HookedModel], float],
    config: RelearnConfig | None = None,
    progress: bool = False,
) -> dict[int, float]:
    """Fine-tune on ``texts`` and return ``{steps: evaluate(model)}`` for every step count.

    ``model`` is restored to its weights on entry before this returns (also on error).
    """
    config = config or RelearnConfig()
    if len(texts) == 0:
        raise ValueError("no relearning texts given; pass text related to the forget set.")
    data = tokenize_examples(model.tokenizer, [("", t) for t in texts])
    gen = seeded_generator(config.seed)
    order: list[int] = []
    out: dict[int, float] = {}
    with preserved_parameters(model.hf_named_parameters()) as params:
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.AdamW(list(params.values()), lr=config.lr, weight_decay=0.0)
        done = 0
        bar = tqdm(total=config.steps[-1], desc="relearning", disable=not progress)
        for target in config.steps:
            while done < target:
                if len(order) < config.batch_size:
                    order += torch.randperm(len(texts), generator=gen).tolist()
                idx, order = order[: config.batch_size], order[config.batch_size :]
                ids = data.input_ids[idx]
                keep = int((data.loss_weight[idx] > 0).any(0).nonzero().max()) + 2
                ids, w = ids[:, :keep].to(model.device), data.loss_weight[idx, :keep].to(model.device)
                loss = weighted_lm_loss(model.logits(ids).float(), ids, w)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                bar.update(1)
            out[target] = float(evaluate(model))
        bar.close()
    return out
