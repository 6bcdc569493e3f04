"""What a verification needs besides the model, built for the toolkit's targets (secrets, TOFU,
reasoning): :class:`~sae_unlearn.attacks.data.VerificationData` (defined with the attacks that use it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sae_unlearn.attacks.data import VerificationData
from sae_unlearn.data.corpora import CORPORA, corpus_data
from sae_unlearn.data.reasoning import ReasoningCorpus
from sae_unlearn.data.secrets import SecretsCorpus
from sae_unlearn.data.tofu import load_tofu_split, relearn_split


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

    if name.startswith("tofu:"):
        return tofu_verification_data(tofu_source, name.split(":", 1)[1])
    corpus = ZOO[name].corpus if name in ZOO else name
    if corpus in CORPORA:
        c = corpus_data(corpus, source=tofu_source)
        return VerificationData(c.name, c.split, c.relearn_texts, c.relearn_eval, reasoning=c.reasoning)
    raise ValueError(
        f"unknown verification data {name!r}; use a zoo model ({', '.join(sorted(ZOO))}), a registered corpus "
        f"({', '.join(CORPORA)}) or 'tofu:forget01|05|10'."
    )
