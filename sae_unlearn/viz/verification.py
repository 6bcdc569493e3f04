"""Pure plot functions for the verification report (data in, figure out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from sae_unlearn.viz.figure import new_figure


def plot_relearn(model: Mapping[str, float], oracle: Mapping[str, float], title: str = "Benign relearning") -> Figure:
    """Held-out forget accuracy against relearning steps, the model vs the retain oracle."""
    fig, ax = new_figure(figsize=(4.8, 3.2))
    _model_vs_oracle(ax, model, oracle)
    ax.set_xlabel("relearning steps")
    ax.set_ylabel("held-out forget accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _model_vs_oracle(ax, model: Mapping, oracle: Mapping) -> list[int]:
    """The model's and the oracle's accuracy curves (keys are step counts or layers, int or str)."""
    for curve, label, style in ((model, "model", "o-"), (oracle, "retain oracle", "s--")):
        keys = sorted(curve, key=int)
        ax.plot([int(k) for k in keys], [curve[k] for k in keys], style, label=label)
    ax.set_ylim(-0.03, 1.03)
    return sorted(int(k) for k in model)


def plot_attacks(names: Sequence[str], model: Sequence[float], oracle: Sequence[float]) -> Figure:
    """Forget accuracy under each attack, the model beside the retain oracle."""
    fig, ax = new_figure(figsize=(6.5, 0.35 * len(names) + 1.2))
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], model, height=0.4, label="model", color="tab:red")
    ax.barh([i - 0.2 for i in y], oracle, height=0.4, label="retain oracle", color="tab:gray")
    ax.set_yticks(list(y), list(names), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("forget accuracy under attack")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_logit_lens(model: Mapping[int, float], oracle: Mapping[int, float]) -> Figure:
    """Top-1 accuracy of the answer token decoded from every layer, model vs retain oracle."""
    fig, ax = new_figure(figsize=(4.8, 3.2))
    layers = _model_vs_oracle(ax, model, oracle)
    ax.set_xlabel("layer (resid_post)")
    ax.set_ylabel("answer token top-1")
    ax.set_xticks(layers)
    ax.legend(fontsize=8)
    ax.set_title("Logit lens on the forget questions", fontsize=10)
    fig.tight_layout()
    return fig


def plot_truth_ratios(model: Sequence[float], oracle: Sequence[float], forget_quality: float | None = None) -> Figure:
    """Histograms of the forget-set truth ratios of the model and the oracle (what the KS test compares)."""
    import math

    fig, ax = new_figure(figsize=(4.8, 3.2))
    logs = {name: [math.log10(max(v, 1e-12)) for v in vals] for name, vals in (("model", model), ("oracle", oracle))}
    lo, hi = min(min(v) for v in logs.values()), max(max(v) for v in logs.values())
    bins = [lo + (hi - lo + 1e-9) * i / 20 for i in range(21)]
    ax.hist(logs["model"], bins=bins, alpha=0.6, label="model", color="tab:red")
    ax.hist(logs["oracle"], bins=bins, alpha=0.6, label="retain oracle", color="tab:gray")
    ax.set_xlabel("log10 truth ratio  P(wrong) / P(true)")
    ax.set_ylabel("forget questions")
    fq = "" if forget_quality is None else f" (forget quality {forget_quality:.2g})"
    ax.set_title("Truth ratios" + fq, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
