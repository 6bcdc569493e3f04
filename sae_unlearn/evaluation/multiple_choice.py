"""Multiple-choice accuracy on local questions in the WMDP / MMLU shape.

A question file is JSON (a list) or JSON Lines of ``{"question": str, "choices": [str, ...],
"answer": int}`` (the index of the correct choice) — the layout of WMDP and MMLU on the hub,
saved locally. Two scorings:

- ``"letter"`` (lm-evaluation-harness's WMDP/MMLU format, for instruction-following models):
  the prompt lists the choices as ``A. …``; the model's pick is the letter with the highest
  log-probability after ``Answer:``.
- ``"choice_text"``: the pick is the choice whose text has the highest length-normalised
  log-probability after the question (works for small models that never saw the format).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sae_unlearn.evaluation.knowledge import answer_logprobs
from sae_unlearn.models.loading import HookedModel

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class MCQuestion:
    """One multiple-choice question."""

    question: str
    choices: tuple[str, ...]
    answer: int
    """Index of the correct choice."""

    def __post_init__(self) -> None:
        if not 2 <= len(self.choices) <= len(LETTERS):
            raise ValueError(f"question {self.question[:60]!r} has {len(self.choices)} choices; give 2-10.")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(
                f"question {self.question[:60]!r}: answer index {self.answer} is out of range for "
                f"{len(self.choices)} choices (it is 0-based)."
            )

    def letter_prompt(self) -> str:
        lines = [self.question.strip()] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices)]
        return "\n".join(lines) + "\nAnswer:"


def load_mc_questions(path: str | Path) -> list[MCQuestion]:
    """Read questions from a JSON list or a JSON Lines file (fields ``question``, ``choices``, ``answer``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"multiple-choice file {path} not found; give a .json or .jsonl file.")
    text = path.read_text()
    try:
        rows = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(l) for l in text.splitlines() if l.strip()]
        )
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is neither a JSON list nor JSON Lines ({e}).") from e
    out = []
    for i, r in enumerate(rows):
        missing = [k for k in ("question", "choices", "answer") if k not in r]
        if missing:
            raise ValueError(
                f"{path}: row {i} lacks {missing}; each row needs question, choices and answer (an index)."
            )
        out.append(MCQuestion(str(r["question"]), tuple(str(c) for c in r["choices"]), int(r["answer"])))
    if not out:
        raise ValueError(f"{path} holds no questions.")
    return out


def multiple_choice_accuracy(
    model: HookedModel,
    questions: Sequence[MCQuestion],
    scoring: Literal["letter", "choice_text"] = "letter",
    batch_size: int = 64,
) -> float:
    """Fraction of questions whose highest-scoring choice is the correct one (see the module docstring)."""
    if scoring not in ("letter", "choice_text"):
        raise ValueError(f"scoring={scoring!r}; use 'letter' or 'choice_text'.")
    if len(questions) == 0:
        raise ValueError("no questions given.")
    prompts, answers = [], []
    for q in questions:
        for i, c in enumerate(q.choices):
            if scoring == "letter":
                prompts.append(q.letter_prompt())
                answers.append(f" {LETTERS[i]}")
            else:
                prompts.append(q.question.strip())
                answers.append(" " + c.strip())
    lps = answer_logprobs(model, prompts, answers, batch_size)
    correct, pos = 0, 0
    for q in questions:
        scores = lps[pos : pos + len(q.choices)]
        pos += len(q.choices)
        correct += int(max(range(len(scores)), key=scores.__getitem__) == q.answer)
    return correct / len(questions)
