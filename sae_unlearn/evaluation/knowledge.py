"""Does a model know a fact? Greedy answers, exact-attribute accuracy and ROUGE-L recall.

- *Exact-attribute accuracy*: the greedy answer to a fact's question states the fact's target
  value (``"Lisbon"``) in its first sentence.
- *ROUGE-L recall* (TOFU's generation metric): longest-common-subsequence recall of the greedy
  answer against the reference answer, computed with Google's ``rouge_score`` (as TOFU and
  OpenUnlearning do) with stemming.

Generation is batched greedy decoding with left padding through the Hugging Face model, so any
hook added through the bridge (an SAE, a clamp) applies while answering.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rouge_score import rouge_scorer
from tqdm.auto import tqdm

from sae_unlearn.data.splits import QAPair
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import as_text_list

#: ROUGE-L recall at which a free-form answer (no exact target) counts as knowing the fact.
ROUGE_KNOWN = 0.5
_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@dataclass
class KnowledgeResult:
    """Per-item answers and scores for a list of facts."""

    answers: list[str]
    """Greedy answers (decoded continuation after the prompt)."""
    correct: list[bool]
    """Whether each answer states its target (always ``False`` for items without a target)."""
    rouge_l_recall: list[float]
    """ROUGE-L recall of each answer against the reference answer."""
    has_target: list[bool] | None = None
    """Whether each item has an exact target (else it counts as known by ROUGE-L recall)."""

    @property
    def known(self) -> list[bool]:
        """Per item: states the target when it has one, else ROUGE-L recall >= 0.5."""
        flags = self.has_target or [True] * len(self.correct)
        return [c if t else r >= ROUGE_KNOWN for c, r, t in zip(self.correct, self.rouge_l_recall, flags, strict=True)]

    @property
    def known_fraction(self) -> float:
        """Fraction of items known (see :attr:`known`): the toolkit's "accuracy" on any split."""
        return sum(self.known) / max(1, len(self.known))

    @property
    def exact_match(self) -> float:
        """Fraction of items whose greedy answer states the exact target value (0 on splits
        without targets, e.g. TOFU). Reports call :attr:`known_fraction` "accuracy"."""
        return sum(self.correct) / max(1, len(self.correct))

    @property
    def accuracy(self) -> float:
        """Deprecated: it meant :attr:`exact_match`, while "accuracy" everywhere else (reports,
        verification) is :attr:`known_fraction`. Use one of those."""
        warnings.warn(
            "KnowledgeResult.accuracy is deprecated: use .known_fraction (what reports call accuracy) or "
            ".exact_match (exact-target hits; this property's old meaning).",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.exact_match

    @property
    def mean_rouge_l_recall(self) -> float:
        return sum(self.rouge_l_recall) / max(1, len(self.rouge_l_recall))


@torch.no_grad()
def greedy_answers(
    model: HookedModel,
    prompts: Sequence[str],
    max_new_tokens: int = 12,
    batch_size: int = 64,
    progress: bool = False,
) -> list[str]:
    """Greedy continuations of ``prompts`` (special tokens dropped), batched with left padding.

    A prompt longer than the model's context raises ``ValueError``; one whose answer would run past
    the context (prompt tokens + ``max_new_tokens`` > ``n_ctx``) is answered, with a ``UserWarning``
    (the model still generates there, untrained, and the first answer tokens are usually what is
    scored).
    """
    prompts = as_text_list(prompts, "prompts")
    if len(prompts) == 0:
        return []
    tok = model.tokenizer
    old_side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    warned = False
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="answering", disable=not progress):
            enc = tok(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True).to(model.device)
            longest = int(enc["attention_mask"].sum(1).max())
            i = start + int(enc["attention_mask"].sum(1).argmax())
            if longest > model.n_ctx:
                raise ValueError(
                    f"prompt {i} ({prompts[i][:40]!r}…) has {longest} tokens, more than the model's context of "
                    f"{model.n_ctx}; shorten it."
                )
            if longest + max_new_tokens > model.n_ctx and not warned:
                warnings.warn(
                    f"prompt {i} ({prompts[i][:40]!r}…) has {longest} tokens; with max_new_tokens={max_new_tokens} its "
                    f"answer runs past the model's context of {model.n_ctx}, where the model was never trained. "
                    "Shorten the prompt or lower max_new_tokens if those tokens matter.",
                    UserWarning,
                    stacklevel=2,
                )
                warned = True
            gen = model.hf_model.generate(  # type: ignore[operator]  # nn.Module.__getattr__ hides generate
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            out += tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tok.padding_side = old_side
    return out


def first_sentence(answer: str) -> str:
    """The answer up to its first sentence end or newline (``" Lisbon. Q: …"`` → ``" Lisbon."``)."""
    m = re.search(r"(?<!\d)\.(?!\d)|\n", answer)
    return answer[: m.end()] if m else answer


def states_target(answer: str, target: str) -> bool:
    """True when ``target`` appears as a whole word/number in the answer's first sentence."""
    if not target:
        return False
    return re.search(rf"(?<!\w){re.escape(target)}(?!\w)", first_sentence(answer)) is not None


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference`` (rouge_score, stemmed)."""
    return float(_SCORER.score(reference, prediction)["rougeL"].recall)


def evaluate_knowledge(
    model: HookedModel,
    items: Sequence[QAPair],
    max_new_tokens: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> KnowledgeResult:
    """Answer every item greedily and score it (exact target and ROUGE-L recall).

    ``max_new_tokens`` defaults to the longest reference answer's token count plus 4.
    """
    if len(items) == 0:
        raise ValueError("no items to evaluate; pass a non-empty forget or retain set.")
    if max_new_tokens is None:
        longest = max(len(model.tokenizer(q.answer, add_special_tokens=False)["input_ids"]) for q in items)
        max_new_tokens = longest + 4
    answers = greedy_answers(model, [q.prompt for q in items], max_new_tokens, batch_size, progress)
    references = [q.answer.strip() for q in items]
    # A TOFU answer is one paragraph: cut generation at a new question, not at the first period.
    trimmed = [a.split("\nQuestion:")[0].split("Question:")[0].strip() for a in answers]
    return KnowledgeResult(
        answers=answers,
        correct=[states_target(a, q.target) for a, q in zip(answers, items, strict=True)],
        rouge_l_recall=[rouge_l_recall(p, r) for p, r in zip(trimmed, references, strict=True)],
        has_target=[bool(q.target) for q in items],
    )


@torch.no_grad()
def answer_logprobs(
    model: HookedModel, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 64
) -> list[float]:
    """Mean per-token log-probability of each ``answer`` after its ``prompt`` (TOFU's length-normalised score)."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers; give one answer per prompt.")
    if len(prompts) == 0:
        raise ValueError("no items given.")
    out: list[float] = []
    for start in range(0, len(prompts), batch_size):
        ps, ans = prompts[start : start + batch_size], answers[start : start + batch_size]
        batch = model.tokenize([p + a for p, a in zip(ps, ans, strict=True)])
        n_prompt = [len(model.tokenizer(p)["input_ids"]) for p in ps]
        tok_lp = model.next_token_logprobs(batch.input_ids)
        for i, n in enumerate(n_prompt):
            length = int(batch.attention_mask[i].sum())
            lp = tok_lp[i, n - 1 : length - 1]
            out.append(float(lp.mean()) if lp.numel() else float("-inf"))
    return out


def answer_probability(model: HookedModel, items: Sequence[QAPair], batch_size: int = 64) -> list[float]:
    """TOFU's normalised answer probability ``P(answer | prompt) ** (1 / n_answer_tokens)`` per item."""
    if len(items) == 0:
        raise ValueError("no items given.")
    lps = answer_logprobs(model, [q.prompt for q in items], [q.answer for q in items], batch_size)
    return [math.exp(lp) for lp in lps]
