"""Pure plot functions for activation capture (data in, ``matplotlib`` figure out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from sae_unlearn.viz.figure import new_figure


def plot_norms_per_layer(
    forget_norms: Mapping[int, float], retain_norms: Mapping[int, float], title: str = "Mean activation norm per layer"
) -> Figure:
    """Line plot of mean activation norm per layer, forget text vs retain text."""
    fig, ax = new_figure(figsize=(5.5, 3.4))
    layers = sorted(forget_norms)
    ax.plot(layers, [forget_norms[l] for l in layers], "o-", color="tab:red", label="forget text")
    ax.plot(layers, [retain_norms[l] for l in sorted(retain_norms)], "s--", color="tab:blue", label="retain text")
    ax.set_xlabel("layer (hook_resid_post)")
    ax.set_ylabel("mean L2 norm")
    ax.set_xticks(layers)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_norm_histograms(
    forget_norms: Sequence[float], retain_norms: Sequence[float], hook: str = "", bins: int = 40
) -> Figure:
    """Histograms of per-token activation norms at one hook, forget text vs retain text (densities)."""
    fig, ax = new_figure(figsize=(5.5, 3.2))
    ax.hist(list(retain_norms), bins=bins, density=True, alpha=0.55, color="tab:blue", label="retain tokens")
    ax.hist(list(forget_norms), bins=bins, density=True, alpha=0.55, color="tab:red", label="forget tokens")
    ax.set_xlabel("L2 norm")
    ax.set_ylabel("density")
    ax.set_title(f"Token norms at {hook}" if hook else "Token norms", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
