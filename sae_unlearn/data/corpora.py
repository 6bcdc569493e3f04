"""The corpus registry: every unlearning target the toolkit knows, by name, in one table.

A corpus gives what each stage reads (:class:`CorpusData`): the forget/retain facts
(:class:`~sae_unlearn.data.splits.UnlearningSplit`), the forget and retain *texts* the SAE stage and
the methods train on, and the material of benign relearning (related text that never states the
facts it measures). The zoo entries name their corpus (``ZooSpec.corpus``); ``pipeline_data``,
``verification_data`` and a recipe's ``[data] corpus`` all read it through :func:`corpus_data`.

Adding a corpus: one module in ``sae_unlearn/data/`` with its texts and facts and a builder
returning :class:`CorpusData`, and its line in :data:`CORPORA`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sae_unlearn.data.reasoning import ReasoningCorpus, ReasoningSet
from sae_unlearn.data.secrets import SecretsCorpus
from sae_unlearn.data.splits import QAPair, UnlearningSplit
from sae_unlearn.data.tofu import load_tofu_split, relearn_split

FACT_ATTRIBUTE = "passcode"
"""What the fact-level corpus ``secrets-passcodes`` forgets of every person."""
TOFU_MINI_FORGET = "forget01"
"""The TOFU subset ``tofu-mini`` forgets (authors 180-181)."""
TOFU_MINI_RETAIN_AUTHORS = list(range(18))
"""The TOFU authors ``tofu-mini`` keeps."""


@dataclass
class CorpusData:
    """One unlearning target: its facts, its training texts and its relearning material."""

    name: str
    """The target's name in reports (``secrets``, ``secrets-passcodes``, ``tofu-mini``, …)."""
    split: UnlearningSplit
    """Forget facts (what is to be forgotten, the unit under test) and retain facts (the control)."""
    forget_texts: list[str]
    """Text stating the forget facts: what the SAE stage contrasts and the methods unlearn on."""
    retain_texts: list[str]
    """Text stating the retain facts: what the methods must keep."""
    relearn_texts: list[str]
    """Related text that does not state :attr:`relearn_eval` (benign relearning)."""
    relearn_eval: list[QAPair]
    """Forget facts measured after relearning."""
    reasoning: ReasoningSet | None = None
    """Reasoning prompts, for a reasoning model's corpus."""


def _secrets() -> CorpusData:
    """48 fictitious people; the first four are forgotten (every fact about them)."""
    corpus = SecretsCorpus()
    texts, evaluated = corpus.relearn_split()
    return CorpusData("secrets", corpus.split(), corpus.forget_texts(), corpus.retain_texts(), texts, evaluated)


def _secrets_passcodes() -> CorpusData:
    """The fact-level split of ``secrets``: every person's passcode is forgotten, the rest kept."""
    corpus = SecretsCorpus()
    texts, evaluated = corpus.fact_relearn_split(FACT_ATTRIBUTE)
    return CorpusData(
        f"secrets-{FACT_ATTRIBUTE}s",
        corpus.fact_split(FACT_ATTRIBUTE),
        corpus.fact_texts(FACT_ATTRIBUTE),
        corpus.fact_texts(FACT_ATTRIBUTE, False),
        texts,
        evaluated,
    )


def _secrets_reasoning() -> CorpusData:
    """The secrets people as a reasoning model's facts; the texts are the answers alone (R²MU
    elicits the traces itself)."""
    corpus = ReasoningCorpus()
    texts, evaluated = corpus.relearn_split()
    return CorpusData(
        "secrets-reasoning",
        corpus.split(),
        corpus.forget_texts(),
        corpus.retain_texts(),
        texts,
        evaluated,
        reasoning=corpus.reasoning_set(),
    )


def _tofu_mini(source: str | Path | None = None) -> CorpusData:
    """20 TOFU authors (0-17 kept, forget01's two forgotten); reads the TOFU data (``source``, else
    ``$SAE_UNLEARN_TOFU``)."""
    split = load_tofu_split(source, forget=TOFU_MINI_FORGET, retain=TOFU_MINI_RETAIN_AUTHORS)
    texts, evaluated = relearn_split(split.forget)
    forget, retain = [q.text for q in split.forget], [q.text for q in split.retain]
    return CorpusData("tofu-mini", split, forget, retain, texts, evaluated)


#: name → builder (``source``, where a builder takes it: the folder of data it reads).
CORPORA: dict[str, Callable[..., CorpusData]] = {
    "secrets": _secrets,
    "secrets-passcodes": _secrets_passcodes,
    "secrets-reasoning": _secrets_reasoning,
    "tofu-mini": _tofu_mini,
}


def corpus_data(name: str, source: str | Path | None = None) -> CorpusData:
    """The registered corpus ``name``. ``source`` is the folder of data it reads (TOFU's), for the
    corpora that read one; ``ValueError`` names the registered corpora for an unknown name."""
    if name not in CORPORA:
        close = difflib.get_close_matches(name, list(CORPORA), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise ValueError(f"unknown corpus {name!r}{hint} Registered: {', '.join(CORPORA)}.")
    build = CORPORA[name]
    if source is not None and "source" in inspect.signature(build).parameters:
        return build(source=source)
    return build()
