"""Question/answer items and forget/retain splits, with the checks every method relies on.

A :class:`QAPair` is one fact as a prompt and the answer that should follow it
(``prompt + answer`` is the text a model was trained on). An :class:`UnlearningSplit`
holds the forget set (what should be forgotten) and the retain set (what must be kept);
building one checks that neither is empty and that no item sits in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class QAPair:
    """One fact as a prompt and its expected continuation."""

    prompt: str
    """Text up to the answer, e.g. ``"Q: Where does Ana Reyes live? A:"``."""
    answer: str
    """The continuation that states the fact, e.g. ``" Lisbon."`` (leading space included)."""
    subject: str
    """Who or what the fact is about (a person's or an author's name)."""
    attribute: str = ""
    """Which attribute (``"city"``, ``"passcode"``, …); empty for free-form QA such as TOFU."""
    target: str = ""
    """The exact value that must appear in a greedy answer for it to count as known
    (``"Lisbon"``); empty when only ROUGE applies."""
    paraphrased_prompt: str = ""
    """The same question in held-out wording (prompt attacks); empty when there is none."""
    paraphrased_answer: str = ""
    """The answer reworded (TOFU's truth ratio compares it with the perturbed answers);
    empty means "use ``answer``"."""
    perturbed_answers: tuple[str, ...] = ()
    """Wrong answers of the same shape (``" Porto."``), for the truth ratio and probes."""

    @property
    def text(self) -> str:
        """``prompt + answer``: the training text of this fact."""
        return self.prompt + self.answer

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def true_answer(self) -> str:
        """The answer the truth ratio treats as correct: the paraphrase when given, else ``answer``."""
        return self.paraphrased_answer or self.answer


class SplitError(ValueError):
    """A forget/retain split that cannot be used (empty, overlapping, unreadable)."""


@dataclass
class UnlearningSplit:
    """A forget set and a retain set over the same kind of facts."""

    name: str
    forget: list[QAPair]
    retain: list[QAPair]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.forget = list(self.forget)
        self.retain = list(self.retain)
        validate_split(self.forget, self.retain, name=self.name)

    @property
    def forget_subjects(self) -> list[str]:
        """Distinct subjects of the forget set, in first-seen order."""
        return list(dict.fromkeys(p.subject for p in self.forget))

    @property
    def retain_subjects(self) -> list[str]:
        """Distinct subjects of the retain set, in first-seen order."""
        return list(dict.fromkeys(p.subject for p in self.retain))

    def __repr__(self) -> str:
        return (
            f"UnlearningSplit({self.name!r}: forget={len(self.forget)} items / "
            f"{len(self.forget_subjects)} subjects, retain={len(self.retain)} items / "
            f"{len(self.retain_subjects)} subjects)"
        )


def validate_split(forget: Sequence[QAPair], retain: Sequence[QAPair], name: str = "split") -> None:
    """Raise :class:`SplitError` for an empty side or an item present in both sides."""
    if len(forget) == 0:
        raise SplitError(
            f"{name}: the forget set is empty. Give at least one fact to forget "
            "(check the subject names / author ids you selected)."
        )
    if len(retain) == 0:
        raise SplitError(
            f"{name}: the retain set is empty. Unlearning needs retain data to preserve; "
            "select at least one subject that is not in the forget set."
        )
    forget_texts = {p.text for p in forget}
    overlap = [p for p in retain if p.text in forget_texts]
    if overlap:
        shown = "; ".join(repr(p.text[:80]) for p in overlap[:3])
        raise SplitError(
            f"{name}: {len(overlap)} item(s) are in both the forget and the retain set, e.g. {shown}. "
            "Remove them from one side (a fact cannot be both forgotten and kept)."
        )


def split_by_subject(items: Iterable[QAPair], forget_subjects: Iterable[str], name: str = "split") -> UnlearningSplit:
    """Forget every item whose subject is in ``forget_subjects``; retain the rest."""
    forget_set = set(forget_subjects)
    items = list(items)
    known = {p.subject for p in items}
    missing = sorted(forget_set - known)
    if missing:
        raise SplitError(
            f"{name}: forget subject(s) {missing[:5]} not found among the {len(known)} subjects of the data "
            f"(e.g. {sorted(known)[:5]}). Check the spelling or the data source."
        )
    forget = [p for p in items if p.subject in forget_set]
    retain = [p for p in items if p.subject not in forget_set]
    return UnlearningSplit(name=name, forget=forget, retain=retain)
