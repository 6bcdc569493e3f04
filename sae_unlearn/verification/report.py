"""Is it gone or only hidden? A verification report for any unlearned model.

Following the SoK on LLM unlearning (Ren et al. 2025), a model is judged on three fronts, each
measured identically on the model and on the retain oracle (the same architecture trained
without the forget set — what "never knew it" looks like):

- **unit** (the forget set): accuracy, ROUGE-L recall, answer probability, TOFU's truth ratio
  and forget quality (KS-test p-value between the two models' forget truth ratios), and how
  *natural* the answers to forget questions read (:mod:`sae_unlearn.evaluation.naturalness`);
- **control** (everything else): retain accuracy and TOFU's model utility (+ multiple choice);
- **reconstruction**: every registered attack (:data:`sae_unlearn.attacks.ATTACKS`: benign
  relearning over a grid of learning rates, seeds, full fine-tuning and LoRA; direction
  ablation; prompt attacks; a tuned-lens probe; the logit lens; int8 / 4-bit weights; for a
  weight-free method, the intervention removed), each run the same way on the oracle.

For a reasoning model (data with reasoning prompts) the forget people's reasoning traces are
measured too (:mod:`sae_unlearn.evaluation.reasoning`).

Verdict: *not forgotten* when the forget accuracy, or the trace leak rate, is above the oracle's
by more than ``margin``; *removed* when no attack gets more than ``margin`` above the oracle under
the same attack and the forget quality is at least ``forget_quality_threshold``; otherwise
*suppressed* (hidden at the output but recoverable, or distinguishable from never having known
it). Each comparison carries a confidence interval on the model−oracle gap (Newcombe's hybrid
score interval over the facts), and the report's ``evidence`` says *too thin to tell* when an
interval straddles the margin on a check the verdict rests on: with 12-20 facts a 0.1 margin is
one or two facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sae_unlearn.atomic import write_json_atomic, write_text_atomic
from sae_unlearn.attacks import ATTACKS
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import run_environment
from sae_unlearn.verification.config import VerifyConfig
from sae_unlearn.verification.data import VerificationData
from sae_unlearn.verification.measurement import ControlMetrics, Measurement, UnitMetrics, measure
from sae_unlearn.verification.rendering import report_figures, report_markdown
from sae_unlearn.verification.verdict import EVIDENCE, VERDICTS, Check, distinguish, judge
from sae_unlearn.viz.figure import save_png

__all__ = [
    "EVIDENCE",
    "VERDICTS",
    "Check",
    "ControlMetrics",
    "Measurement",
    "UnitMetrics",
    "VerificationReport",
    "VerifyConfig",
    "judge",
    "measure",
    "verify",
]


@dataclass
class VerificationReport:
    """Unit, control and reconstruction evidence of one model against the retain oracle, and a verdict."""

    name: str
    verdict: str
    reasons: list[str]
    forget_quality: float | None
    checks: list[Check]
    model: Measurement
    oracle: Measurement
    config: dict = field(default_factory=dict)
    evidence: str = "conclusive"
    """``"too thin to tell"`` when a check the verdict rests on has an interval across the margin."""
    distinguisher_accuracy: float | None = None
    """Held-out accuracy telling the model's forget answers from the oracle's (0.5: cannot)."""

    @property
    def relearn_forget_accuracy(self) -> float | None:
        """Held-out forget accuracy after the largest relearning step count (worst case over the grid)."""
        return ATTACKS["relearn"].summarize(self.model.attacks.get("relearn"))["relearn_forget_accuracy"]

    @property
    def probe_accuracy(self) -> float | None:
        return ATTACKS["probe"].summarize(self.model.attacks.get("probe"))["probe_accuracy"]

    def summary(self) -> dict:
        """The headline numbers (what the demo report and the benchmark tables show): the verdict, the
        unit and control metrics, and every registered attack's own headline numbers
        (:meth:`~sae_unlearn.attacks.Attack.summarize`; ``None`` for an attack that did not run)."""
        nat, onat = self.model.naturalness, self.oracle.naturalness
        out = {
            "verdict": self.verdict,
            "evidence": self.evidence,
            "forget_quality": self.forget_quality,
            "model_utility": self.model.control.model_utility,
            "forget_accuracy": self.model.unit.forget_accuracy,
            "retain_accuracy": self.model.control.retain_accuracy,
        }
        for name, attack in sorted(ATTACKS.items(), key=lambda kv: (kv[1].order, kv[0])):
            out |= attack.summarize(self.model.attacks.get(name))
        return out | {
            "degenerate_share": nat.degenerate_share if nat else None,
            "oracle_degenerate_share": onat.degenerate_share if onat else None,
            "distinguisher_accuracy": self.distinguisher_accuracy,
            **self._reasoning_summary(),
        }

    def _reasoning_summary(self) -> dict:
        r = self.model.reasoning
        if r is None or self.oracle.reasoning is None:
            return {}
        return {
            "trace_leak_rate": r["forget_trace_leak_rate"],
            "oracle_trace_leak_rate": self.oracle.reasoning["forget_trace_leak_rate"],
            "forget_answer_with_trigger": r["forget_answer_with_trigger"],
            "forget_answer_without_trigger": r["forget_answer_without_trigger"],
            "retain_trace_correct": r["retain_trace_correct"],
        }

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "reasons": self.reasons,
            "forget_quality": self.forget_quality,
            "summary": self.summary(),
            "checks": [c.to_dict() for c in self.checks],
            "environment": run_environment(),
            "model": self.model.to_dict(),
            "oracle": self.oracle.to_dict(),
            "config": self.config,
        }

    def to_markdown(self) -> str:
        """The report as a Markdown table (also how Jupyter shows it)."""
        return report_markdown(self)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def figures(self) -> dict:
        """The report's figures (relearning curves, attacks vs oracle, logit lens, truth ratios)."""
        return report_figures(self)

    def save(self, out_dir: str | Path, figures: bool = True) -> Path:
        """Write ``verification.json``, ``verification.md`` and the figures (PNG) to ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "verification.json", self.to_dict())
        write_text_atomic(out / "verification.md", self.to_markdown() + "\n")
        if figures:
            for name, fig in self.figures().items():
                save_png(fig, out / f"verification_{name}.png", dpi=110)
        return out / "verification.json"


def verify(
    model: HookedModel | Measurement,
    data: VerificationData,
    oracle: HookedModel | Measurement,
    config: VerifyConfig | None = None,
    name: str = "model",
    progress: bool = False,
    reference: HookedModel | None = None,
) -> VerificationReport:
    """Verify ``model`` against the retain ``oracle``; either may be a model or its
    :func:`measure` result to reuse (measured with the same ``data`` and ``config``).

    ``reference``: the original model, when known (see :func:`measure`). Neither model's
    weights change (attacks restore them).
    """
    config = config or VerifyConfig()
    if not isinstance(oracle, Measurement) or not isinstance(model, Measurement):
        for attack in config.active_attacks():  # a bad attack setting fails before either model is measured
            for m in (model, oracle):
                if isinstance(m, HookedModel) and attack.applies(m, data):
                    attack.check(m)
    oracle_m = oracle if isinstance(oracle, Measurement) else measure(oracle, data, config, progress, reference)
    model_m = model if isinstance(model, Measurement) else measure(model, data, config, progress, reference)
    verdict, reasons, fq, checks, evidence = judge(model_m, oracle_m, config)
    return VerificationReport(
        name=name,
        verdict=verdict,
        reasons=reasons,
        forget_quality=fq,
        checks=checks,
        model=model_m,
        oracle=oracle_m,
        config=config.to_dict(),
        evidence=evidence,
        distinguisher_accuracy=distinguish(model_m, oracle_m, config),
    )
