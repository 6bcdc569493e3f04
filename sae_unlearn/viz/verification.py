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


def plot_attacks(
    names: Sequence[str],
    model: Sequence[float],
    oracle: Sequence[float],
    gap_intervals: Sequence[tuple[float, float]] | None = None,
) -> Figure:
    """Forget accuracy under each attack, the model beside the retain oracle; with
    ``gap_intervals`` the model's bar carries the interval of its gap to the oracle (shifted onto
    the oracle's value), so a bar whose whisker crosses oracle + margin is too close to call."""
    fig, ax = new_figure(figsize=(6.5, 0.35 * len(names) + 1.2))
    y = range(len(names))
    err = None
    if gap_intervals is not None:
        err = [
            [max(0.0, m - (o + lo)) for m, o, (lo, _) in zip(model, oracle, gap_intervals, strict=True)],
            [max(0.0, (o + hi) - m) for m, o, (_, hi) in zip(model, oracle, gap_intervals, strict=True)],
        ]
    ax.barh([i + 0.2 for i in y], model, height=0.4, label="model", color="tab:red", xerr=err, capsize=2)
    ax.barh([i - 0.2 for i in y], oracle, height=0.4, label="retain oracle", color="tab:gray")
    ax.set_yticks(list(y), list(names), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("forget accuracy under attack")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_relearn_grid(
    model: Mapping[str, Mapping[str, float]], oracle: Mapping[str, Mapping[str, float]] | None = None
) -> Figure:
    """Every run of the relearning grid (one panel per run kind and learning rate, a line per
    seed): held-out forget accuracy against steps, the model in red, the oracle in grey."""
    groups = sorted({label.rsplit(" seed=", 1)[0] for label in model})
    cols = min(3, len(groups))
    rows = (len(groups) + cols - 1) // cols
    fig, axes = new_figure(figsize=(3.0 * cols, 2.4 * rows), nrows=rows, ncols=cols, squeeze=False)
    for ax, group in zip(axes.flat, groups, strict=False):
        for curves, color, who in ((model, "tab:red", "model"), (oracle or {}, "tab:gray", "oracle")):
            runs = [curves[k] for k in sorted(curves) if k.startswith(group + " ")]
            for i, curve in enumerate(runs):
                keys = sorted(curve, key=int)
                ax.plot(
                    [int(k) for k in keys],
                    [curve[k] for k in keys],
                    "o-",
                    color=color,
                    alpha=0.7,
                    ms=3,
                    label=who if i == 0 else None,
                )
        ax.set_title(group, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("steps", fontsize=8)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("held-out forget accuracy", fontsize=8)
    axes.flat[0].legend(fontsize=7)
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


def plot_methods_relearn(curves: Mapping[str, Mapping[str, float]], oracle: Mapping[str, float]) -> Figure:
    """Worst-case held-out forget accuracy against relearning steps, one line per method, the
    retain oracle (under the same attack) dashed."""
    fig, ax = new_figure(figsize=(5.4, 3.4))
    for name, curve in curves.items():
        keys = sorted(curve, key=int)
        ax.plot([int(k) for k in keys], [curve[k] for k in keys], "o-", label=name, ms=4)
    keys = sorted(oracle, key=int)
    ax.plot([int(k) for k in keys], [oracle[k] for k in keys], "k--", label="retain oracle", lw=2)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("relearning steps")
    ax.set_ylabel("held-out forget accuracy (worst of grid)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Does it come back? Relearning, every method", fontsize=10)
    fig.tight_layout()
    return fig


def plot_layer_excess(
    per_layer: Mapping[str, Mapping[int, float]], oracle: Mapping[int, float], what: str = "probe accuracy"
) -> Figure:
    """Heat map, methods × layers, of how far a layer-wise readout on the forget facts exceeds the
    oracle's at that layer: where in the layers each model still holds the secret."""
    import numpy as np

    names = list(per_layer)
    layers = sorted(int(k) for k in oracle)
    grid = np.array([[per_layer[n][layer] - oracle[layer] for layer in layers] for n in names])
    fig, ax = new_figure(figsize=(1.0 + 0.7 * len(layers), 0.45 * len(names) + 1.3))
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(layers)), [str(layer) for layer in layers])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(layers)):
            ax.text(j, i, f"{grid[i, j]:+.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("layer (resid_post)")
    ax.set_title(f"{what}: model − oracle", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig
