"""Pure plot functions for reasoning-trace unlearning and refusals (data in, figure out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from sae_unlearn.viz.figure import new_figure

TRACE_BARS = (
    ("forget_trace_leak_rate", "forget traces that leak"),
    ("forget_answer_with_trigger", "forget answer after reasoning"),
    ("retain_trace_correct", "retain traces correct"),
)


def plot_rates(
    variants: Mapping[str, Mapping[str, float]], bars: Sequence[tuple[str, str]], title: str, ylabel: str = "share"
) -> Figure:
    """Grouped bars: per variant (x), one bar per ``(key, label)`` of ``bars`` (values in [0, 1])."""
    if not variants:
        raise ValueError("no variants to plot; pass {name: {key: value}}.")
    missing = sorted({k for v in variants.values() for k, _ in bars if k not in v})
    if missing:
        raise KeyError(f"variants lack {missing}; each needs every key of {[k for k, _ in bars]}.")
    fig, ax = new_figure(figsize=(1.2 * len(variants) + 3.0, 3.2))
    width = 0.8 / len(bars)
    names = list(variants)
    for j, (key, label) in enumerate(bars):
        xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [variants[n][key] for n in names], width=width, label=label)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_traces(variants: Mapping[str, Mapping[str, float]], title: str = "Reasoning traces") -> Figure:
    """Per variant (original, oracle, each method): the share of forget traces stating a forget fact,
    of forget answers still right after reasoning, and of retain traces still correct
    (:func:`sae_unlearn.evaluation.reasoning.reasoning_metrics` results)."""
    return plot_rates(variants, TRACE_BARS, title, "share of prompts")


REFUSAL_BARS = (
    ("forget_answer_prob", "P(forget answer)"),
    ("forget_refusal_rate", "forget questions refused"),
    ("retain_answer_prob", "P(retain answer)"),
    ("retain_refusal_rate", "retain questions refused"),
)


def plot_refusals(variants: Mapping[str, Mapping[str, float]], title: str = "Refusal vs answer") -> Figure:
    """Per variant: mean probability of the true answer and the share of refused questions, on the
    forget and on the retain side (a refusal-teaching method should refuse forget questions only)."""
    return plot_rates(variants, REFUSAL_BARS, title)
