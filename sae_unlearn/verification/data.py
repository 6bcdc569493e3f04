"""What a verification needs besides the model: the facts, relearning text and utility sets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sae_unlearn.data.reasoning import ReasoningCorpus, ReasoningSet
from sae_unlearn.data.secrets import SecretsCorpus
from sae_unlearn.data.splits import QAPair, UnlearningSplit
from sae_unlearn.data.tofu import load_tofu_split, relearn_split
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


def secrets_verification_data(corpus: SecretsCorpus | None = None) -> VerificationData:
    """The secrets corpus: relearn on job/pet/birth year of the forget people, measure passcode/city/employer."""
    corpus = corpus or SecretsCorpus()
    texts, evaluated = corpus.relearn_split()
    return VerificationData("secrets", corpus.split(), texts, evaluated)


def secrets_fact_verification_data(
    attribute: str = "passcode", corpus: SecretsCorpus | None = None
) -> VerificationData:
    """The fact-level secrets split: relearn ``attribute`` of half the people, measure the other half's."""
    corpus = corpus or SecretsCorpus()
    texts, evaluated = corpus.fact_relearn_split(attribute)
    return VerificationData(f"secrets-{attribute}s", corpus.fact_split(attribute), texts, evaluated)


def reasoning_verification_data(corpus: ReasoningCorpus | None = None) -> VerificationData:
    """The secrets-reasoning corpus: the secrets facts (no city) plus its reasoning prompts."""
    corpus = corpus or ReasoningCorpus()
    texts, evaluated = corpus.relearn_split()
    return VerificationData("secrets-reasoning", corpus.split(), texts, evaluated, reasoning=corpus.reasoning_set())


def tofu_verification_data(
    source: str | Path | None = None,
    forget: str | Sequence[int] = "forget01",
    retain: Sequence[int] | None = None,
    name: str | None = None,
) -> VerificationData:
    """TOFU: relearn on the first half of each forget author's questions, measure the second half."""
    split = load_tofu_split(source, forget=forget, retain=retain)
    texts, evaluated = relearn_split(split.forget)
    return VerificationData(name or split.name, split, texts, evaluated)


def verification_data(name: str, tofu_source: str | Path | None = None) -> VerificationData:
    """By name: a zoo entry (``"secrets"`` and its architecture twins, ``"tofu-mini"``: the entry's
    authors) or ``"tofu:forget01"`` etc."""
    from sae_unlearn.models.zoo import ZOO

    corpus = ZOO[name].corpus if name in ZOO else name
    if corpus == "secrets":
        return secrets_verification_data()
    if corpus == "secrets-passcodes":
        from sae_unlearn.models.zoo import FACT_ATTRIBUTE

        return secrets_fact_verification_data(FACT_ATTRIBUTE)
    if corpus == "secrets-reasoning":
        return reasoning_verification_data()
    if corpus == "tofu-mini":
        from sae_unlearn.models.zoo import TOFU_MINI_FORGET, TOFU_MINI_RETAIN_AUTHORS

        return tofu_verification_data(tofu_source, TOFU_MINI_FORGET, TOFU_MINI_RETAIN_AUTHORS, name="tofu-mini")
    if name.startswith("tofu:"):
        return tofu_verification_data(tofu_source, name.split(":", 1)[1])
    raise ValueError(
        f"unknown verification data {name!r}; use a zoo model ({', '.join(sorted(ZOO))}) or 'tofu:forget01|05|10'."
    )
