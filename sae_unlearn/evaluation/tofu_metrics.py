"""TOFU's forget and utility metrics (Maini et al. 2024), as OpenUnlearning computes them.

- *Truth ratio* of a question: ``R = P̃(perturbed) / P̃(paraphrased)``, where ``P̃(a)`` is the
  length-normalised probability ``P(a | q) ** (1 / |a|)`` and ``P̃(perturbed)`` is the geometric
  mean over the perturbed (wrong) answers. A model that knows the fact has ``R ≪ 1``; one that
  has never seen it has ``R ≈ 1``.
- *Forget quality*: the p-value of a two-sample Kolmogorov-Smirnov test between the truth
  ratios of the unlearned model and of the retain oracle on the forget set. High means the two
  are indistinguishable (TOFU's bar: p ≥ 0.05).
- *Model utility*: the harmonic mean of answer probability, ROUGE-L recall and truth score
  (``mean(max(0, 1 - R))``) over the retain set and any further utility sets (TOFU's
  ``real_authors`` and ``world_facts`` for pretrained models). One weak number drags it down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import ks_2samp

from sae_unlearn.data.splits import QAPair
from sae_unlearn.evaluation.knowledge import (
    KnowledgeResult,
    answer_logprobs,
    answer_probability,
    evaluate_knowledge,
)
from sae_unlearn.models.loading import HookedModel


def candidate_answers(items: Sequence[QAPair]) -> tuple[list[str], list[str], list[int]]:
    """Every item's candidates, true answer first: ``(prompts, answers, candidates per item)``.

    The truth ratio and the probe both score these; items need perturbed (wrong) answers.
    """
    missing = [q.prompt for q in items if not q.perturbed_answers]
    if missing:
        raise ValueError(
            f"{len(missing)} item(s) have no perturbed answers (e.g. {missing[0]!r}); the truth ratio and the "
            "probe need them. Load TOFU with tofu_perturbed.jsonl beside tofu.jsonl, or build items with "
            "perturbed_answers."
        )
    prompts, answers, sizes = [], [], []
    for q in items:
        cands = (q.true_answer, *q.perturbed_answers)
        prompts += [q.prompt] * len(cands)
        answers += list(cands)
        sizes.append(len(cands))
    return prompts, answers, sizes


def truth_ratios(model: HookedModel, items: Sequence[QAPair], batch_size: int = 64) -> list[float]:
    """TOFU's truth ratio ``P̃(perturbed) / P̃(true answer)`` per item (items need perturbed answers)."""
    prompts, answers, sizes = candidate_answers(items)
    lps = answer_logprobs(model, prompts, answers, batch_size)
    out, pos = [], 0
    for n in sizes:
        true_lp, wrong = lps[pos], lps[pos + 1 : pos + n]
        pos += n
        out.append(math.exp(sum(wrong) / len(wrong) - true_lp))
    return out


def forget_truth_score(ratios: Sequence[float]) -> float:
    """OpenUnlearning's forget-set aggregate ``mean(min(R, 1/R))``: 1 when true and wrong are equally likely."""
    return sum(min(r, 1 / max(r, 1e-10)) for r in ratios) / max(1, len(ratios))


def retain_truth_score(ratios: Sequence[float]) -> float:
    """TOFU's retain-set aggregate ``mean(max(0, 1 - R))``: 1 when wrong answers are far less likely."""
    return sum(max(0.0, 1 - r) for r in ratios) / max(1, len(ratios))


def forget_quality(unlearned_ratios: Sequence[float], oracle_ratios: Sequence[float]) -> float:
    """KS-test p-value between the two models' forget-set truth ratios (TOFU's forget quality)."""
    if len(unlearned_ratios) == 0 or len(oracle_ratios) == 0:
        raise ValueError("forget quality needs truth ratios of both models on the same non-empty forget set.")
    return float(ks_2samp(list(unlearned_ratios), list(oracle_ratios)).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean; 0 when any value is 0."""
    if len(values) == 0:
        raise ValueError("harmonic mean of no values.")
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


@dataclass
class UtilityResult:
    """TOFU's model utility and the metrics it is made of (per utility set)."""

    model_utility: float
    """Harmonic mean of every component below."""
    components: dict[str, float]
    """``"<set>/answer_prob"``, ``"<set>/rouge_l_recall"``, ``"<set>/truth_score"``."""


def model_utility(
    model: HookedModel,
    sets: Mapping[str, Sequence[QAPair]],
    batch_size: int = 64,
    knowledge: Mapping[str, KnowledgeResult] | None = None,
) -> UtilityResult:
    """TOFU's model utility over named QA sets (e.g. ``{"retain": split.retain}``).

    Per set: mean normalised answer probability, mean ROUGE-L recall of the greedy answer, and
    the truth score ``mean(max(0, 1 - R))`` over the items that have perturbed answers.
    ``knowledge`` reuses greedy answers already computed for a set (by name).
    """
    if not sets:
        raise ValueError("give at least one utility set, e.g. {'retain': split.retain}.")
    comps: dict[str, float] = {}
    for name, items in sets.items():
        items = list(items)
        probs = answer_probability(model, items, batch_size)
        comps[f"{name}/answer_prob"] = sum(probs) / len(probs)
        known = (knowledge or {}).get(name) or evaluate_knowledge(model, items, batch_size=batch_size)
        comps[f"{name}/rouge_l_recall"] = known.mean_rouge_l_recall
        with_wrong = [q for q in items if q.perturbed_answers]
        if with_wrong:
            comps[f"{name}/truth_score"] = retain_truth_score(truth_ratios(model, with_wrong, batch_size))
    return UtilityResult(model_utility=harmonic_mean(list(comps.values())), components=comps)
