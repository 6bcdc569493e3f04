"""Natural forgetting: does the model answer questions about forgotten subjects like a model that
never knew them, or does it babble?

A model that answers exactly the forgotten questions with repetition ("screen screen screen …")
or word salad, where the retain oracle answers fluently (with a plausible wrong fact), is a poor
product, and its babble itself reveals what was removed. Two measures, on greedy answers to the
forget questions (longer than the scored answers, so a loop has room to show):

- **degenerate share**: answers in which one word fills at least ``degenerate_share`` of the
  words (at least ``min_words`` words), compared with the oracle's share;
- **distinguisher accuracy**: a logistic regression on the answers' word uni- and bigrams (hashed)
  and three shape features (top word share, distinct-word ratio, length), trained to tell the
  model's answers from the oracle's to the same questions; its k-fold held-out accuracy is 0.5
  when the two cannot be told apart.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.evaluation.knowledge import greedy_answers
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import DictConfig, seeded_generator


@dataclass
class NaturalnessConfig(DictConfig):
    """How answers are generated and judged."""

    max_new_tokens: int = 24
    """Tokens generated per forget question."""
    degenerate_share: float = 0.5
    """One word filling at least this share of an answer's words makes it degenerate."""
    min_words: int = 4
    """Answers with fewer words are never called degenerate."""
    folds: int = 5
    """Cross-validation folds of the distinguisher."""
    buckets: int = 4096
    """Hashed n-gram features of the distinguisher."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_new_tokens < 1 or self.min_words < 1 or self.folds < 2 or self.buckets < 16:
            raise ValueError(
                f"max_new_tokens={self.max_new_tokens}, min_words={self.min_words} must be >= 1, folds={self.folds} "
                f">= 2, buckets={self.buckets} >= 16."
            )
        if not 0 < self.degenerate_share <= 1:
            raise ValueError(f"degenerate_share={self.degenerate_share} must be in (0, 1].")


def _words(text: str) -> list[str]:
    return text.lower().replace(".", " ").replace(",", " ").replace("?", " ").split()


def top_word_share(text: str) -> float:
    """The share of an answer's words taken by its most common word (0 for an empty answer)."""
    words = _words(text)
    return Counter(words).most_common(1)[0][1] / len(words) if words else 0.0


def is_degenerate(text: str, share: float = 0.5, min_words: int = 4) -> bool:
    """One word fills at least ``share`` of an answer of at least ``min_words`` words."""
    return len(_words(text)) >= min_words and top_word_share(text) >= share


@dataclass
class NaturalnessResult:
    """One model's answers to the forget questions and their degenerate share."""

    answers: list[str]
    degenerate_share: float

    @property
    def n(self) -> int:
        return len(self.answers)

    def to_dict(self) -> dict:
        return {"answers": self.answers, "degenerate_share": self.degenerate_share}

    @classmethod
    def from_dict(cls, d: dict) -> NaturalnessResult:
        return cls(list(d["answers"]), float(d["degenerate_share"]))


def naturalness(
    model: HookedModel, prompts: Sequence[str], config: NaturalnessConfig | None = None, batch_size: int = 64
) -> NaturalnessResult:
    """Greedy answers to ``prompts`` and the share that is degenerate."""
    config = config or NaturalnessConfig()
    answers = [a.strip() for a in greedy_answers(model, prompts, config.max_new_tokens, batch_size)]
    bad = sum(is_degenerate(a, config.degenerate_share, config.min_words) for a in answers)
    return NaturalnessResult(answers, bad / max(1, len(answers)))


def answer_features(answers: Sequence[str], buckets: int = 4096) -> Float[Tensor, "n buckets_plus_3"]:
    """Hashed word uni-/bigram counts (log1p) plus top word share, distinct-word ratio and length."""
    x = torch.zeros(len(answers), buckets + 3)
    for i, text in enumerate(answers):
        words = _words(text)
        for gram in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            x[i, zlib.crc32(gram.encode()) % buckets] += 1
        x[i, buckets] = top_word_share(text)
        x[i, buckets + 1] = len(set(words)) / len(words) if words else 0.0
        x[i, buckets + 2] = len(words) / 32
    x[:, :buckets] = x[:, :buckets].log1p()
    return x


def distinguisher_accuracy(
    a: Sequence[str], b: Sequence[str], folds: int = 5, buckets: int = 4096, seed: int = 0, steps: int = 200
) -> float:
    """Held-out accuracy of a logistic regression telling answers ``a`` from answers ``b``, where
    ``a[i]`` and ``b[i]`` answer the same question (0.5 = indistinguishable).

    Cross-validation folds are drawn over questions, so both answers to a question are held out
    together: identical answers then score exactly 0.5, as they should (folds over single answers
    would leave each answer's twin, with the other label, in the training set).
    """
    if len(a) != len(b):
        raise ValueError(f"give one answer per question from each model; got {len(a)} and {len(b)}.")
    if len(a) < folds:
        raise ValueError(f"need at least folds={folds} questions, got {len(a)}.")
    x = answer_features([*a, *b], buckets)
    y = torch.cat([torch.ones(len(a)), torch.zeros(len(b))])
    fold_of_question = torch.empty(len(a), dtype=torch.long)
    fold_of_question[torch.randperm(len(a), generator=seeded_generator(seed))] = torch.arange(len(a)) % folds
    fold = torch.cat([fold_of_question, fold_of_question])
    correct = 0.0
    for k in range(folds):
        train, test = fold != k, fold == k
        mu, sd = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
        xt = (x - mu) / sd
        w = torch.zeros(x.shape[1], requires_grad=True)
        bias = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, bias], max_iter=steps, line_search_fn="strong_wolfe")

        def closure(xt=xt, train=train, w=w, bias=bias, opt=opt) -> Tensor:
            opt.zero_grad()
            logits = xt[train] @ w + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[train]) + 1e-2 * w.square().sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        with torch.no_grad():
            score = xt[test] @ w + bias
        # a tie (identical answers, or no signal) is a coin flip: half right
        correct += float(torch.where(score == 0, 0.5, ((score > 0).float() == y[test]).float()).sum())
    return correct / len(y)
