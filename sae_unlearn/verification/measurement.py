"""Measuring one model: the unit (forget set), control (everything else), naturalness, reasoning
traces and every registered attack (:func:`measure`), run identically on the model and the oracle."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from sae_unlearn.attacks import AttackContext, AttackResult
from sae_unlearn.evaluation import (
    answer_probability,
    evaluate_knowledge,
    forget_truth_score,
    model_utility,
    multiple_choice_accuracy,
    truth_ratios,
)
from sae_unlearn.evaluation.naturalness import NaturalnessResult, naturalness
from sae_unlearn.evaluation.reasoning import reasoning_metrics
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.verification.config import VerifyConfig
from sae_unlearn.verification.data import VerificationData


@dataclass
class UnitMetrics:
    """The forget set, as the model answers it."""

    forget_accuracy: float
    forget_rouge_l_recall: float
    forget_answer_prob: float
    forget_truth_score: float | None
    truth_ratios: list[float] | None
    items: list[dict]
    """Per forget fact: prompt, target, the model's answer, whether it is known."""

    @property
    def n(self) -> int:
        return len(self.items)


@dataclass
class ControlMetrics:
    """Everything else the model should still know."""

    retain_accuracy: float
    retain_rouge_l_recall: float
    model_utility: float
    utility_components: dict[str, float]
    mc_accuracy: float | None = None


@dataclass
class Measurement:
    """Every metric and attack on one model (:func:`measure`); JSON via :meth:`to_dict`."""

    unit: UnitMetrics
    control: ControlMetrics
    attacks: dict[str, AttackResult]
    """Attack name → what it found."""
    naturalness: NaturalnessResult | None = None
    reasoning: dict | None = None
    """Reasoning-trace metrics (:func:`sae_unlearn.evaluation.reasoning.reasoning_metrics`)."""
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def relearn(self) -> dict[str, float]:
        """Step count → held-out forget accuracy, the worst case over the relearning grid."""
        r = self.attacks.get("relearn")
        return dict(r.details["worst"]) if r else {}

    def to_dict(self) -> dict:
        return {
            "unit": asdict(self.unit),
            "control": asdict(self.control),
            "attacks": {k: r.to_dict() for k, r in self.attacks.items()},
            "naturalness": self.naturalness.to_dict() if self.naturalness else None,
            "reasoning": self.reasoning,
            "seconds": self.seconds,
            "timing": self.timing,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        return cls(
            unit=UnitMetrics(**d["unit"]),
            control=ControlMetrics(**d["control"]),
            attacks={k: AttackResult.from_dict(r) for k, r in d["attacks"].items()},
            naturalness=NaturalnessResult.from_dict(d["naturalness"]) if d.get("naturalness") else None,
            reasoning=d.get("reasoning"),
            seconds=float(d.get("seconds", 0.0)),
            timing=dict(d.get("timing", {})),
        )


def measure(
    model: HookedModel,
    data: VerificationData,
    config: VerifyConfig | None = None,
    progress: bool = False,
    reference: HookedModel | None = None,
) -> Measurement:
    """Every metric and attack on one model (its weights and hooks are unchanged afterwards).

    ``reference``: the original model before unlearning, when known (direction ablation reads the
    direction unlearning added as the difference to it; otherwise forget minus retain questions).
    Every attack's settings are checked against the model before anything runs.
    """
    config = config or VerifyConfig()
    attacks = [a for a in config.active_attacks() if a.applies(model, data)]
    for attack in attacks:
        attack.check(model)
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    clock = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timing[name] = now - clock[0]
        clock[0] = now

    bs = config.batch_size
    split = data.split
    fk = evaluate_knowledge(model, split.forget, batch_size=bs)
    rk = evaluate_knowledge(model, split.retain, batch_size=bs)
    with_wrong = [q for q in split.forget if q.perturbed_answers]
    tr = truth_ratios(model, with_wrong, bs) if with_wrong else None
    unit = UnitMetrics(
        forget_accuracy=fk.known_fraction,
        forget_rouge_l_recall=fk.mean_rouge_l_recall,
        forget_answer_prob=_mean(answer_probability(model, split.forget, bs)),
        forget_truth_score=forget_truth_score(tr) if tr is not None else None,
        truth_ratios=tr,
        items=[
            {"prompt": q.prompt, "target": q.target or q.answer.strip(), "answer": a.strip(), "known": k}
            for q, a, k in zip(split.forget, fk.answers, fk.known, strict=True)
        ],
    )
    nat = naturalness(model, [q.prompt for q in split.forget], config.naturalness, bs) if config.naturalness else None
    lap("unit_s")
    util = model_utility(model, data.utility_sets, bs, knowledge={"retain": rk})
    control = ControlMetrics(
        retain_accuracy=rk.known_fraction,
        retain_rouge_l_recall=rk.mean_rouge_l_recall,
        model_utility=util.model_utility,
        utility_components=util.components,
        mc_accuracy=multiple_choice_accuracy(model, data.mc_questions, batch_size=bs) if data.mc_questions else None,
    )
    lap("control_s")
    reasoning = None
    if data.reasoning is not None:
        reasoning = reasoning_metrics(model, data.reasoning, bs)
        lap("reasoning_s")
    context = AttackContext(batch_size=bs, seed=config.seed, progress=progress, reference=reference)
    results: dict[str, AttackResult] = {}
    for attack in tqdm(attacks, desc="attacks", disable=not progress):
        results[attack.name] = attack.run(model, data, context)
        lap(f"{attack.name}_s")
    return Measurement(unit, control, results, nat, reasoning, time.perf_counter() - t0, timing)


def _mean(xs: list[float]) -> float:
    return sum(xs) / max(1, len(xs))
