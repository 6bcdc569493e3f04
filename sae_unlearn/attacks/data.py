"""What the attacks are run on besides the model: the forget/retain facts and the attack material
of one unlearning target (:class:`VerificationData`). The builders of the toolkit's targets
(secrets, TOFU, reasoning) are :mod:`sae_unlearn.verification.data`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sae_unlearn.data.reasoning import ReasoningSet
from sae_unlearn.data.splits import QAPair, UnlearningSplit
from sae_unlearn.evaluation.multiple_choice import MCQuestion


@dataclass
class VerificationData:
    """The forget/retain facts and the attack material for one unlearning target."""

    name: str
    split: UnlearningSplit
    """Forget facts (the unit under test) and retain facts (the control)."""
    relearn_texts: list[str]
    """Text related to the forget set that does not state ``relearn_eval`` (benign relearning)."""
    relearn_eval: list[QAPair]
    """Forget facts measured after relearning (never in ``relearn_texts``)."""
    utility_sets: dict[str, list[QAPair]] = field(default_factory=dict)
    """Named QA sets for TOFU's model utility (default: the retain set)."""
    mc_questions: list[MCQuestion] | None = None
    """Optional multiple-choice questions (WMDP/MMLU shape) scored as part of the control."""
    n_shots: int = 3
    """Retain examples placed before a question by the few-shot prompt attack."""
    reasoning: ReasoningSet | None = None
    """Reasoning prompts (a reasoning model): trace leak rate, trace correctness and answers with
    and without the trigger are measured too (:mod:`sae_unlearn.evaluation.reasoning`)."""

    def __post_init__(self) -> None:
        if not self.utility_sets:
            self.utility_sets = {"retain": list(self.split.retain)}
        if not self.relearn_texts or not self.relearn_eval:
            raise ValueError(f"{self.name}: relearning needs texts and held-out forget facts; got none.")
        leaked = [q.text for q in self.relearn_eval if q.text in set(self.relearn_texts)]
        if leaked:
            raise ValueError(
                f"{self.name}: {len(leaked)} evaluated fact(s) appear in the relearning text (e.g. {leaked[0]!r}); "
                "relearning must exclude the facts it measures."
            )

    @property
    def shots(self) -> list[QAPair]:
        """The few-shot examples (the first retain facts)."""
        return list(self.split.retain[: self.n_shots])

    def with_retain(self, n: int) -> VerificationData:
        """A copy whose retain set (the control, the probe's training facts and, where it was the
        retain set, model utility's set) is the first ``n`` retain facts: the same attacks, measured
        faster (the notebooks' quick runs). Forget facts and relearning material stay as they are."""
        if isinstance(n, bool) or not isinstance(n, int) or not self.n_shots < n:
            raise ValueError(f"n={n!r}: keep more retain facts than the {self.n_shots} few-shot examples.")
        retain = self.split.retain[:n]
        default = self.utility_sets == {"retain": self.split.retain}
        utility = {} if default else dict(self.utility_sets)
        return replace(self, split=replace(self.split, retain=retain), utility_sets=utility)
