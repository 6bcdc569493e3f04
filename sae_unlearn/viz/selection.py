"""Pure plot functions for layer/latent selection and subspaces (data in, figure out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from sae_unlearn.viz.figure import new_figure


def plot_layer_scores(
    scores: Mapping[str, float],
    chosen: str,
    title: str = "Layer selection",
    intervals: Mapping[str, tuple[float, float]] | None = None,
    interval_label: str = "95% bootstrap interval",
) -> Figure:
    """Bar chart of each hook's forget/retain separation score (AUROC), the chosen one highlighted.

    The axis starts at chance (0.5; lower only if a score or interval is below it, with chance
    dashed), so bar heights compare honestly; ``intervals``
    (``{hook: (low, high)}``, e.g. :attr:`SelectionResult.layer_score_intervals`) are drawn as
    error bars, showing whether the chosen layer's lead is larger than the scores' own spread;
    ``interval_label`` names them under the axis.
    """
    fig, ax = new_figure(figsize=(5.5, 3.2))
    names = list(scores)
    values = [scores[n] for n in names]
    colors = ["tab:red" if n == chosen else "tab:gray" for n in names]
    intervals = {n: intervals[n] for n in names if n in intervals} if intervals else {}
    yerr = None
    if intervals:
        lows = [max(0.0, v - intervals[n][0]) if n in intervals else 0.0 for n, v in zip(names, values)]
        highs = [max(0.0, intervals[n][1] - v) if n in intervals else 0.0 for n, v in zip(names, values)]
        yerr = [lows, highs]
    ax.bar(range(len(names)), values, color=colors, yerr=yerr, capsize=4, error_kw={"elinewidth": 1})
    ax.set_xticks(range(len(names)), [n.split(".")[1] if n.startswith("blocks.") else n for n in names])
    ax.set_xlabel(f"layer (error bars: {interval_label})" if intervals else "layer")
    ax.set_ylabel("AUROC forget vs retain (0.5 = chance)", fontsize=9)
    lowest = min([*values, *(lo for lo, _ in intervals.values())])
    if lowest < 0.5:  # worse than chance somewhere: show where chance is
        ax.axhline(0.5, ls="--", lw=1, c="black", alpha=0.6)
    ax.set_ylim(min(0.5, lowest - 0.02), 1.01)
    ax.set_title(f"{title} (chosen: {chosen})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_latent_firing(
    latents: Sequence[int], freq_forget: Sequence[float], freq_retain: Sequence[float], title: str = "Selected latents"
) -> Figure:
    """Firing frequency of each selected latent on forget vs retain tokens."""
    fig, ax = new_figure(figsize=(max(5.0, 0.28 * len(latents) + 2), 3.2))
    x = range(len(latents))
    w = 0.4
    ax.bar([i - w / 2 for i in x], freq_forget, w, color="tab:red", label="forget tokens")
    ax.bar([i + w / 2 for i in x], freq_retain, w, color="tab:blue", label="retain tokens")
    ax.set_xticks(list(x), [str(i) for i in latents], rotation=90, fontsize=7)
    ax.set_xlabel("latent")
    ax.set_ylabel("firing frequency")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_principal_angles(angles_deg: Sequence[float], title: str = "Relevant vs irrelevant subspace") -> Figure:
    """Principal angles between two subspaces (90° = orthogonal)."""
    fig, ax = new_figure(figsize=(5.0, 3.0))
    ax.plot(range(1, len(angles_deg) + 1), angles_deg, "o-", color="tab:purple")
    ax.axhline(90, color="gray", ls="--", lw=0.8)
    ax.set_ylim(0, 95)
    ax.set_xlabel("principal angle index")
    ax.set_ylabel("degrees")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_score_ranking(scores: Sequence[float], chosen: int | None = None, top: int = 64, title: str = "") -> Figure:
    """The ``top`` latent scores in descending order (rank on x), the chosen rank highlighted."""
    fig, ax = new_figure(figsize=(5.5, 3.0))
    vals = sorted((float(s) for s in scores), reverse=True)[:top]
    colors = ["tab:gray"] * len(vals)
    if chosen is not None and 0 <= chosen < len(vals):
        colors[chosen] = "tab:red"
    ax.bar(range(len(vals)), vals, color=colors)
    ax.set_xlabel("rank")
    ax.set_ylabel("score")
    ax.set_yscale("log" if vals and min(vals) > 0 and max(vals) / min(vals) > 100 else "linear")
    ax.set_title(title or "Latent scores (forget-relevance)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_activation_histogram(
    forget_acts: Sequence[float], retain_acts: Sequence[float], latent: int, bins: int = 30
) -> Figure:
    """Histogram of one latent's non-zero activations on forget vs retain tokens, with firing rates."""
    fig, ax = new_figure(figsize=(5.5, 3.0))
    f = [a for a in forget_acts if a > 0]
    r = [a for a in retain_acts if a > 0]
    hi = max([*f, *r, 1e-6])
    edges = [hi * i / bins for i in range(bins + 1)]
    ax.hist(r, bins=edges, alpha=0.55, color="tab:blue", label=f"retain ({len(r) / max(1, len(retain_acts)):.1%} fire)")
    ax.hist(f, bins=edges, alpha=0.55, color="tab:red", label=f"forget ({len(f) / max(1, len(forget_acts)):.1%} fire)")
    ax.set_yscale("log")
    ax.set_xlabel("activation (when firing)")
    ax.set_ylabel("tokens")
    ax.set_title(f"Latent {latent}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
