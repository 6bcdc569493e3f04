"""How often does a model refuse? (UniErase and IdkDPO teach refusals; a refusal is not knowledge.)

A greedy answer counts as a refusal when its first sentence is one of the refusal answers
(:mod:`sae_unlearn.data.refusals`), compared case- and space-insensitively; special tokens (an
unlearning token) are dropped before the comparison.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sae_unlearn.evaluation.knowledge import first_sentence, greedy_answers
from sae_unlearn.models.loading import HookedModel


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def is_refusal(answer: str, refusals: Sequence[str]) -> bool:
    """Whether ``answer``'s first sentence is one of ``refusals``."""
    return _norm(first_sentence(answer)) in {_norm(r) for r in refusals}


def refusal_rate(
    model: HookedModel, prompts: Sequence[str], refusals: Sequence[str], max_new_tokens: int = 32, batch_size: int = 64
) -> float:
    """Share of ``prompts`` whose greedy answer is a refusal."""
    if not prompts or not refusals:
        raise ValueError("refusal_rate needs prompts and refusal answers; got an empty list.")
    answers = greedy_answers(model, list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size)
    return sum(is_refusal(a, refusals) for a in answers) / len(answers)
