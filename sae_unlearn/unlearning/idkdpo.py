"""IdkDPO: direct preference optimisation with a refusal as the preferred answer (as in
OpenUnlearning; Maini et al. 2024, "TOFU").

Each forget text that is a question with its answer (``Q: … A: …`` or TOFU's
``Question: …\\nAnswer: …``) becomes a preference pair: the preferred completion is a refusal
("I don't know.", :mod:`sae_unlearn.data.refusals`; TOFU's own ``idontknow.txt`` for TOFU), the
rejected one the true answer. The forget term is DPO's,
``−(2/β) · log σ(β · ((log π_θ − log π_ref)(refusal) − (log π_θ − log π_ref)(answer)))``, with
answer-token log-probabilities and the frozen model as reference (β = 0.1); plus ``α · NLL_retain``.
Forget texts that are not questions (plain statements) are not used: there is nothing to refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.data.refusals import load_refusals
from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.unlearning.gradient import GradDiff, NPOConfig, batch_nll
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.trainer import TrainRun
from sae_unlearn.utils import seeded_generator

_ANSWER = re.compile(r"(\nAnswer:|(?<=\S) A:)")


def split_question(text: str) -> tuple[str, str] | None:
    """``(prompt, answer)`` of a question-answer text, split after its last answer marker
    (``" A:"`` or ``"\\nAnswer:"``); ``None`` for a text that is not a question with an answer."""
    marks = list(_ANSWER.finditer(text))
    if not marks:
        return None
    cut = marks[-1].end()
    prompt, answer = text[:cut], text[cut:]
    return (prompt, answer) if answer.strip() else None


@dataclass
class IdkDPOConfig(NPOConfig):
    """IdkDPO's settings (OpenUnlearning's defaults: β = 0.1, γ = α = 1)."""

    lr: float = 5e-3
    """AdamW learning rate (provisional, from the lr sweep on secrets in benchmarks/unlearning.md)."""
    refusals: str = "auto"
    """``"auto"`` (TOFU's ``idontknow.txt`` for TOFU-format questions, else the bundled set),
    ``"bundled"``, ``"tofu"`` or a file with one refusal per line."""


@dataclass
class PreferenceBatch:
    """Preferred (refusal) and rejected (true answer) completions of the same prompts."""

    chosen: TokenBatch
    chosen_targets: Tensor
    """Which tokens of ``chosen`` are the completion (scored)."""
    rejected: TokenBatch
    rejected_targets: Tensor


def _completion_batch(model: HookedModel, prompts: list[str], completions: list[str]) -> tuple[TokenBatch, Tensor]:
    batch = model.tokenize([p + c for p, c in zip(prompts, completions, strict=True)])
    n_prompt = model.tokenize(prompts).attention_mask.sum(-1)
    pos = torch.arange(batch.input_ids.shape[1])
    targets = (pos[None, :] >= n_prompt[:, None]).long() * batch.attention_mask
    return batch, targets


@register("idk_dpo")
class IdkDPO(GradDiff):
    """DPO toward a refusal on forget questions, NLL on retain text."""

    label = "IdkDPO"
    description = "prefer 'I don't know' over the true answer on forget questions (DPO)"
    config_class = IdkDPOConfig
    config: IdkDPOConfig

    def forget_batches(self, model: HookedModel, forget_texts: list[str]) -> list[PreferenceBatch]:
        """Preference pairs of the forget questions, each with a seeded refusal, in seeded batches;
        forget texts with no question among them, or an empty refusal set, are refused here."""
        pairs = [qa for t in forget_texts if (qa := split_question(t)) is not None]
        if not pairs:
            raise ValueError(
                "IdkDPO needs forget texts that are questions with answers ('Q: … A: …' or 'Question: … "
                f"Answer: …'); none of the {len(forget_texts)} forget texts is (e.g. {forget_texts[0][:60]!r})."
            )
        refusals = load_refusals(self.config.refusals, [prompt for prompt, _ in pairs])
        cfg = self.config
        pick = torch.randint(len(refusals), (len(pairs),), generator=seeded_generator(cfg.seed + 3)).tolist()
        order = torch.randperm(len(pairs), generator=seeded_generator(cfg.seed)).tolist()
        out = []
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            prompts = [pairs[i][0] for i in idx]
            chosen, chosen_t = _completion_batch(model, prompts, [" " + refusals[pick[i]] for i in idx])
            rejected, rejected_t = _completion_batch(model, prompts, [pairs[i][1] for i in idx])
            out.append(PreferenceBatch(chosen, chosen_t, rejected, rejected_t))
        return out

    def setup(self, run: TrainRun) -> None:
        run.state["reference"] = [
            (
                batch_nll(run.model, b.chosen, b.chosen_targets)[0],
                batch_nll(run.model, b.rejected, b.rejected_targets)[0],
            )
            for b in run.forget_batches
        ]

    def forget_term(self, run: TrainRun, forget: PreferenceBatch, forget_index: int) -> Float[Tensor, ""]:  # type: ignore[override]
        ref_chosen, ref_rejected = run.state["reference"][forget_index]
        chosen_nll, _ = batch_nll(run.model, forget.chosen, forget.chosen_targets)
        rejected_nll, _ = batch_nll(run.model, forget.rejected, forget.rejected_targets)
        margin = (ref_chosen - chosen_nll) - (ref_rejected - rejected_nll)  # win log-ratio − lose log-ratio
        beta = self.config.beta
        return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()
