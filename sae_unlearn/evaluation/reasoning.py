"""Does a reasoning model still think what it no longer answers? Trace metrics for R²MU.

For every reasoning prompt (a question followed by the trigger, :mod:`sae_unlearn.data.reasoning`)
the model generates greedily; the text up to the end-of-trace marker is its trace and what follows
``A:`` after it the final answer. Measured, on the forget and on the retain people:

- ``trace_rate``: share of prompts whose generation closes a trace (a model that does not reason
  under the trigger has none, and R²MU cannot run on it);
- ``trace_leak_rate`` (forget): share of traces stating any of the person's attribute values
  (whole-word match), the measure of R²MU's paper;
- ``trace_correct`` (retain): share of traces stating the trained chain, the right employer and
  the right city, with the right final answer (reasoning preserved);
- ``answer_with_trigger`` / ``answer_without_trigger``: final-answer accuracy after reasoning,
  and when the same question is asked directly (``… A:``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sae_unlearn.data.reasoning import ReasoningItem, ReasoningSet
from sae_unlearn.evaluation.knowledge import greedy_answers, states_target
from sae_unlearn.models.loading import HookedModel

TRACE_TOKENS = 48
"""Tokens generated per reasoning prompt (a zoo trace with its answer is about 30)."""


def _says(text: str, value: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


@dataclass
class TraceResult:
    """Generations on reasoning prompts, split into trace and final answer."""

    generations: list[str]
    traces: list[str]
    """Text before the end-of-trace marker (the whole generation when it never closes)."""
    closed: list[bool]
    """Whether the generation closed its trace."""
    answers: list[str]
    """Text after ``A:`` following the closed trace (empty when there is none)."""


def generate_traces(
    model: HookedModel,
    prompts: Sequence[str],
    end_of_trace: str = "</think>",
    max_new_tokens: int = TRACE_TOKENS,
    batch_size: int = 64,
) -> TraceResult:
    """Greedy generations on reasoning prompts, cut into trace and final answer."""
    gens = greedy_answers(model, list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size)
    traces, closed, answers = [], [], []
    for g in gens:
        head, sep, tail = g.partition(end_of_trace)
        traces.append(head)
        closed.append(bool(sep))
        answers.append(tail.split("A:", 1)[1] if sep and "A:" in tail else "")
    return TraceResult(gens, traces, closed, answers)


def trace_leaks(trace: str, item: ReasoningItem) -> bool:
    """Whether ``trace`` states any of the person's attribute values."""
    return any(_says(trace, v) for v in item.secrets)


def trace_correct(trace: str, answer: str, item: ReasoningItem) -> bool:
    """Whether ``trace`` states the trained chain (every value in the expected trace) and the answer is right."""
    expected = item.trace.split("</think>")[0]
    needed = [v for v in item.secrets if _says(expected, v)]
    return all(_says(trace, v) for v in needed) and states_target(answer, item.answer)


def reasoning_metrics(model: HookedModel, data: ReasoningSet, batch_size: int = 64) -> dict:
    """Trace rate, trace leak rate (forget), trace correctness (retain) and final-answer accuracy
    with and without the trigger, on both sides; ``items`` keeps each forget generation."""
    out: dict = {}
    for role, items in (("forget", data.forget), ("retain", data.retain)):
        res = generate_traces(model, [i.prompt for i in items], data.end_of_trace, batch_size=batch_size)
        direct = greedy_answers(model, [i.direct_prompt for i in items], max_new_tokens=6, batch_size=batch_size)
        n = len(items)
        out[f"{role}_trace_rate"] = sum(res.closed) / n
        out[f"{role}_trace_leak_rate"] = sum(trace_leaks(t, i) for t, i in zip(res.traces, items, strict=True)) / n
        out[f"{role}_trace_correct"] = (
            sum(trace_correct(t, a, i) for t, a, i in zip(res.traces, res.answers, items, strict=True)) / n
        )
        out[f"{role}_answer_with_trigger"] = (
            sum(states_target(a, i.answer) for a, i in zip(res.answers, items, strict=True)) / n
        )
        out[f"{role}_answer_without_trigger"] = (
            sum(states_target(a, i.answer) for a, i in zip(direct, items, strict=True)) / n
        )
        if role == "forget":
            out["items"] = [
                {"prompt": i.prompt, "generation": g, "leaks": trace_leaks(t, i)}
                for i, g, t in zip(items, res.generations, res.traces, strict=True)
            ]
    return out
