"""The verdict rules: each attack's score against the oracle's under the same attack
(:class:`Check`, with a confidence interval on the gap), and :func:`judge`: *not forgotten*,
*removed* or *suppressed*, with the reasons and whether the facts settle it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sae_unlearn.attacks import ATTACKS, Score, difference_interval
from sae_unlearn.evaluation import forget_quality
from sae_unlearn.evaluation.naturalness import distinguisher_accuracy
from sae_unlearn.verification.config import VerifyConfig
from sae_unlearn.verification.measurement import Measurement

VERDICTS = ("removed", "suppressed", "not forgotten")
EVIDENCE = ("conclusive", "too thin to tell")


@dataclass
class Check:
    """One attack (or output test) compared between the model and the oracle."""

    name: str
    model: float
    oracle: float
    recovered: bool
    """``model - oracle > margin``: the attack brings back more than the oracle ever knew."""
    gap_interval: tuple[float, float] = (float("nan"), float("nan"))
    """Confidence interval of ``model - oracle`` over the facts (Newcombe's hybrid score)."""
    n: int = 0
    """Facts behind the model's share."""

    @property
    def decided(self) -> bool:
        """Whether the interval lies wholly on one side of the margin (the facts settle it)."""
        lo, hi = self.gap_interval
        return bool(lo > self._margin or hi <= self._margin)

    _margin: float = field(default=0.1, repr=False)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "model": self.model,
            "oracle": self.oracle,
            "recovered": self.recovered,
            "gap_interval": list(self.gap_interval),
            "n": self.n,
            "decided": self.decided,
        }


def _checks(model: Measurement, oracle: Measurement, config: VerifyConfig) -> list[Check]:
    rows: list[tuple[str, Score, Score]] = []
    for name, result in model.attacks.items():
        if name in oracle.attacks and name in ATTACKS:
            rows += ATTACKS[name](config.attacks.get(name)).compare(result, oracle.attacks[name])
    return [
        Check(
            label,
            m.value,
            o.value,
            m.value - o.value > config.margin,
            difference_interval(m, o, config.confidence),
            m.n,
            _margin=config.margin,
        )
        for label, m, o in rows
    ]


def judge(
    model: Measurement, oracle: Measurement, config: VerifyConfig
) -> tuple[str, list[str], float | None, list[Check], str]:
    """Verdict, reasons, forget quality, checks and evidence (conclusive / too thin to tell)."""
    fq = None
    if model.unit.truth_ratios and oracle.unit.truth_ratios:
        fq = forget_quality(model.unit.truth_ratios, oracle.unit.truth_ratios)
    checks = _checks(model, oracle, config)
    acc, oacc = model.unit.forget_accuracy, oracle.unit.forget_accuracy
    n = model.unit.n
    unit_check = Check(
        "forget accuracy",
        acc,
        oacc,
        acc - oacc > config.margin,
        difference_interval(Score(acc, n), Score(oacc, oracle.unit.n), config.confidence),
        n,
        _margin=config.margin,
    )
    thin = "too thin to tell"
    if unit_check.recovered:
        lo, hi = unit_check.gap_interval
        reasons = [
            f"forget accuracy {acc:.3f} is above the oracle's {oacc:.3f} by more than the margin {config.margin}."
        ]
        if not unit_check.decided:
            reasons.append(f"the gap's interval [{lo:+.2f}, {hi:+.2f}] over {n} facts reaches below the margin.")
        return "not forgotten", reasons, fq, checks, "conclusive" if unit_check.decided else thin
    if model.reasoning is not None and oracle.reasoning is not None:
        leak, oleak = model.reasoning["forget_trace_leak_rate"], oracle.reasoning["forget_trace_leak_rate"]
        if leak - oleak > config.margin:  # it says the forgotten facts, only while thinking (R²MU's point)
            reason = (
                f"forget accuracy {acc:.3f} is at the oracle's level, but its reasoning traces state forget facts "
                f"at a rate of {leak:.3f} vs the oracle's {oleak:.3f} (margin {config.margin})."
            )
            return "not forgotten", [reason], fq, checks, "conclusive"
    reasons = [f"forget accuracy {acc:.3f} is at the oracle's level ({oacc:.3f}, margin {config.margin})."]
    recovered = [c for c in checks if c.recovered]
    reasons += [
        f"{c.name} recovers {c.model:.3f} vs the oracle's {c.oracle:.3f} (gap interval "
        f"[{c.gap_interval[0]:+.2f}, {c.gap_interval[1]:+.2f}] over {c.n} facts)."
        for c in recovered
    ]
    distinguishable = fq is not None and fq < config.forget_quality_threshold
    if distinguishable:
        reasons.append(
            f"forget quality {fq:.3g} < {config.forget_quality_threshold}: the truth ratios on the forget set "
            "differ from the oracle's."
        )
    if recovered or distinguishable:
        settled = distinguishable or any(c.decided for c in recovered)
        if not settled:
            reasons.append(
                "every recovering attack's gap interval reaches below the margin: the facts are too few to be sure."
            )
        return "suppressed", reasons, fq, checks, "conclusive" if settled else thin
    reasons.append("no attack recovers more than the oracle knows; the truth ratios match the oracle's.")
    open_checks = [c for c in [unit_check, *checks] if not c.decided]
    if open_checks:
        reasons.append(
            f"{len(open_checks)} check(s) have a gap interval reaching above the margin "
            f"(e.g. {open_checks[0].name}: [{open_checks[0].gap_interval[0]:+.2f}, "
            f"{open_checks[0].gap_interval[1]:+.2f}]): more facts would be needed to be sure."
        )
    return "removed", reasons, fq, checks, thin if open_checks else "conclusive"


def distinguish(model: Measurement, oracle: Measurement, config: VerifyConfig) -> float | None:
    nat, onat = model.naturalness, oracle.naturalness
    if config.naturalness is None or nat is None or onat is None:
        return None
    if min(nat.n, onat.n) < config.naturalness.folds:
        return None
    return distinguisher_accuracy(
        nat.answers, onat.answers, config.naturalness.folds, config.naturalness.buckets, seed=config.seed
    )
