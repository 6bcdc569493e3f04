"""Pure plot functions for training curves: SAE fitting and unlearning (data in, figure out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from sae_unlearn.viz.figure import new_figure


def plot_sae_training(history: Sequence[dict], metric: str = "explained_variance") -> Figure:
    """One curve per hook of ``metric`` (``mse``, ``l0`` or ``explained_variance``) against the step.

    ``history`` holds rows ``{"step", "hook", metric: value}`` as ``fit_saes(on_log=...)`` reports them.
    """
    fig, ax = new_figure(figsize=(5.5, 3.2))
    hooks = list(dict.fromkeys(r["hook"] for r in history))
    for h in hooks:
        rows = [r for r in history if r["hook"] == h]
        ax.plot([r["step"] for r in rows], [r[metric] for r in rows], "o-", ms=3, label=h)
    ax.set_xlabel("SAE training step")
    ax.set_ylabel(metric.replace("_", " "))
    if metric == "mse":
        ax.set_yscale("log")
    if hooks:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(f"SAE training: {metric.replace('_', ' ')}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_unlearning_history(
    history: Sequence[dict], evals: Sequence[dict] = (), compare: Mapping[str, Sequence[dict]] | None = None
) -> Figure:
    """Forget and retain losses per step (left) and forget/retain accuracy at evaluation points
    (right); ``compare`` (``{label: evals}``, e.g. an earlier SSPU run) adds other runs' accuracy
    curves to the right panel, dashed, so methods are compared on the same axes."""
    fig, (ax, ax2) = new_figure(1, 2, figsize=(9, 3.2))
    steps = [r["step"] for r in history]
    for key, color in (("forget_loss", "tab:red"), ("retain_loss", "tab:blue")):
        if history:
            ax.plot(steps, [r[key] for r in history], color=color, label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    # ascent-style methods log negative forget terms: a log axis only when every loss is positive
    positive = all(r[k] > 0 for r in history for k in ("forget_loss", "retain_loss"))
    ax.set_yscale("log" if positive else "symlog")
    ax.grid(alpha=0.3)
    if history:
        ax.legend(fontsize=8)
    ax.set_title("Unlearning losses", fontsize=10)
    for key, color in (("forget_accuracy", "tab:red"), ("retain_accuracy", "tab:blue")):
        if evals:
            ax2.plot(
                [e["step"] for e in evals], [e[key] for e in evals], "o-", color=color, label=key.replace("_", " ")
            )
    for label, other in (compare or {}).items():
        for key, color in (("forget_accuracy", "tab:red"), ("retain_accuracy", "tab:blue")):
            if other:
                ax2.plot(
                    [e["step"] for e in other],
                    [e[key] for e in other],
                    "s--",
                    color=color,
                    alpha=0.45,
                    label=f"{label}: {key.split('_')[0]}",
                )
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_xlabel("step")
    ax2.set_ylabel("accuracy")
    ax2.grid(alpha=0.3)
    if evals or compare:
        ax2.legend(fontsize=7)
    ax2.set_title("Forget / retain accuracy", fontsize=10)
    fig.tight_layout()
    return fig
