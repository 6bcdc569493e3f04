"""Widgets for SSPU stages 1-4: capture, SAE training, layer selection, latents, subspaces.

Each is an ``ipywidgets.VBox`` (display it as the last expression of a cell) whose controls
call the pure plot functions of :mod:`sae_unlearn.viz`; the current figure is kept in
``.panel.figure`` so a test or a script can read what the user would see.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets
import torch
from jaxtyping import Bool, Float, Int
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.capture.store import ActivationStore
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.loading import check_sae_matches
from sae_unlearn.saes.metrics import encode_batched
from sae_unlearn.saes.training import FittedSAEs
from sae_unlearn.selection.contexts import latents_on_text, top_activating_contexts
from sae_unlearn.selection.layers import SelectionResult
from sae_unlearn.subspaces import build_subspaces
from sae_unlearn.viz import (
    plot_activation_histogram,
    plot_layer_scores,
    plot_norm_histograms,
    plot_norms_per_layer,
    plot_principal_angles,
    plot_sae_training,
    plot_score_ranking,
)
from sae_unlearn.widgets._base import FigurePanel, table_html


def _need_store(store: ActivationStore | None, widget: str) -> ActivationStore:
    """The store, or a clear error for a streaming stage's ``None`` (it keeps no activations)."""
    if store is None:
        raise ValueError(
            f"{widget} needs stored activations, but store is None (sae_stage(streaming=True) keeps none). Capture "
            "what you want to browse: capture_activations(model, forget_texts + retain_texts, [hook]), with "
            "forget_mask = store.seq_index < len(forget_texts)."
        )
    return store


class CaptureExplorer(widgets.VBox):
    """Activation norms per layer, forget vs retain; pick a hook to see its per-token norm histogram."""

    def __init__(self, store: ActivationStore | None, forget_mask: Bool[Tensor, " n_tokens"] | None):
        store = _need_store(store, "CaptureExplorer")
        self.store, self.forget_mask = store, store.check_row_mask(forget_mask)
        self.norms = {h: store[h].norm(dim=-1) for h in store.hooks}
        self.hook = widgets.Dropdown(options=list(store.hooks), description="hook")
        self.view = widgets.ToggleButtons(options=["per layer", "histogram"], value="per layer")
        self.panel = FigurePanel()
        self.hook.observe(lambda _: self.redraw(), "value")
        self.view.observe(lambda _: self.redraw(), "value")
        super().__init__([widgets.HBox([self.view, self.hook]), self.panel])
        self.redraw()

    def redraw(self) -> None:
        m = self.forget_mask
        if self.view.value == "per layer":
            hooks = list(self.store.hooks)
            f = {i: float(self.norms[h][m].mean()) for i, h in enumerate(hooks)}
            r = {i: float(self.norms[h][~m].mean()) for i, h in enumerate(hooks)}
            self.panel.show(plot_norms_per_layer(f, r))
        else:
            n = self.norms[self.hook.value]
            self.panel.show(plot_norm_histograms(n[m].tolist(), n[~m].tolist(), self.hook.value))


class SAETrainingMonitor(widgets.VBox):
    """Live SAE training curves: pass the monitor as ``fit_saes(..., on_log=monitor)``, then
    call :meth:`show_fit` with the result (needed when the SAEs came from the cache)."""

    def __init__(self, redraw_every: int = 1):
        self.history: list[dict] = []
        self.redraw_every = max(1, redraw_every)
        self.metric = widgets.ToggleButtons(options=["explained_variance", "l0", "mse"], value="explained_variance")
        self.status = widgets.HTML("waiting for the first log row…")
        self.panel = FigurePanel()
        self.metric.observe(lambda _: self.redraw(), "value")
        super().__init__([self.metric, self.status, self.panel])

    def __call__(self, row: dict) -> None:
        """Record one log row (``{"step", "hook", "l0", "explained_variance", "mse"}``)."""
        self.history.append(dict(row))
        steps = sorted({r["step"] for r in self.history})
        last = [r for r in self.history if r["step"] == steps[-1]]
        self.status.value = html.escape(
            f"step {steps[-1]}: "
            + ", ".join(f"{r['hook']} FVE {r['explained_variance']:.3f} L0 {r['l0']:.1f}" for r in last)
        )
        if len(steps) % self.redraw_every == 0:
            self.redraw()

    def redraw(self) -> None:
        """Plot the recorded rows with the selected metric."""
        self.panel.show(plot_sae_training(self.history, self.metric.value))

    def show_fit(self, fit: FittedSAEs) -> None:
        """Show the finished fit ``fit`` (what :func:`sae_unlearn.saes.fit_saes` returned).

        When log rows arrived live they stay, and the status says the fit is done. When none
        did, because ``fit_saes`` loaded the SAEs from its cache instead of training (or ran
        without ``on_log=monitor``), the status says so, naming the folder, and the training
        log saved with the fit (``fit.history``) is plotted instead.
        """
        if self.history:
            self.status.value = "done · " + self.status.value
            self.redraw()
            return
        where = f" ({fit.source or fit.path})" if (fit.source or fit.path) is not None else ""
        if fit.pretrained:
            msg = f"pretrained SAEs{where}, used as given (not trained here)"
        elif fit.from_cache:
            msg = f"SAEs loaded from the cache{where}, not retrained"
        else:
            msg = f"SAEs fitted{where} without this monitor attached"
        self.history = [dict(r) for r in fit.history]
        if self.history:
            last = max(r["step"] for r in self.history)
            msg += f"; the curves are the training log saved with the fit (steps 0-{last})."
        else:
            msg += "; no training log was saved with this fit."
        self.status.value = html.escape(msg)
        if self.history:
            self.redraw()


class LayerSelectionView(widgets.VBox):
    """Forget/retain separation score per layer, the chosen one highlighted; inspect any layer."""

    def __init__(self, result: SelectionResult):
        self.result = result
        self.layer = widgets.Dropdown(options=list(result.layer_scores), value=result.hook, description="hook")
        self.info = widgets.HTML()
        self.panel = FigurePanel()
        self.layer.observe(lambda _: self.redraw(), "value")
        super().__init__([self.layer, self.info, self.panel])
        self.panel.show(plot_layer_scores(result.layer_scores, result.hook, intervals=result.layer_score_intervals))
        self.redraw()

    def redraw(self) -> None:
        """Describe the hook picked in the dropdown: its score (with its interval) and latents."""
        h = self.layer.value
        sel = self.result.selections[h]
        fire = sel.firing_contrast()
        chosen = " (chosen)" if h == self.result.hook else ""
        interval = self.result.layer_score_intervals.get(h)
        spread = f" (95% interval {interval[0]:.3f}-{interval[1]:.3f})" if interval else ""
        self.info.value = (
            f"<b>{html.escape(h)}{chosen}</b>: AUROC {self.result.layer_scores[h]:.3f}{spread}; "
            f"top-{len(sel.relevant)} latents fire on {fire['freq_forget']:.3f} of forget vs "
            f"{fire['freq_retain']:.4f} of retain tokens ({fire['ratio']:.1f}x)"
        )


class LatentBrowser(widgets.VBox):
    """Browse the forget-relevant latents of one SAE: score ranking, top contexts, activation
    histograms; type any text to see which latents fire on each token."""

    def __init__(
        self,
        model: HookedModel,
        sae: SAE,
        hook: str,
        store: ActivationStore | None,
        forget_mask: Bool[Tensor, " n_tokens"] | None,
        scores: Float[Tensor, " d_sae"],
        latents: Sequence[int] | Int[Tensor, " k"] | None = None,
        n_contexts: int = 5,
    ):
        store = _need_store(store, "LatentBrowser")
        check_sae_matches(sae, hook, int(next(store.iter_shards())[hook].shape[-1]))
        self.model, self.sae, self.hook_name, self.store = model, sae, hook, store
        self.forget_mask = store.check_row_mask(forget_mask)
        self.scores = scores
        self.order = torch.argsort(scores, descending=True)
        ranked = [int(i) for i in (latents if latents is not None else self.order[:64])]
        self.codes = encode_batched(sae, store[hook], hook=hook)
        self.n_contexts = n_contexts
        self.latent = widgets.Dropdown(
            options=[(f"#{r} latent {i} (score {float(scores[i]):.3g})", i) for r, i in enumerate(ranked)],
            description="latent",
            layout=widgets.Layout(width="420px"),
        )
        self.view = widgets.ToggleButtons(options=["histogram", "ranking"], value="histogram")
        self.contexts = widgets.HTML()
        self.text = widgets.Text(placeholder="type a name or a secret…", description="text")
        self.run_text = widgets.Button(description="which latents fire?")
        self.text_out = widgets.HTML()
        self.panel = FigurePanel()
        self.latent.observe(lambda _: self.redraw(), "value")
        self.view.observe(lambda _: self.redraw(), "value")
        self.run_text.on_click(lambda _: self.show_text())
        super().__init__(
            [
                widgets.HBox([self.latent, self.view]),
                self.panel,
                self.contexts,
                widgets.HBox([self.text, self.run_text]),
                self.text_out,
            ]
        )
        self.redraw()

    def redraw(self) -> None:
        i = int(self.latent.value)
        z = self.codes[:, i]
        if self.view.value == "histogram":
            fig = plot_activation_histogram(z[self.forget_mask].tolist(), z[~self.forget_mask].tolist(), i)
        else:
            rank = int((self.order == i).nonzero()[0, 0])
            fig = plot_score_ranking(self.scores.tolist(), chosen=rank, title=f"Scores (latent {i} at rank {rank})")
        self.panel.show(fig)
        ctx = top_activating_contexts(z, self.store, self.model.tokenizer, self.forget_mask, n=self.n_contexts)
        self.contexts.value = "<b>Top-activating contexts</b>" + table_html(
            ["activation", "set", "context"],
            [[f"{c.activation:.2f}", "forget" if c.is_forget else "retain", c.render()] for c in ctx],
        )

    def show_text(self, text: str | None = None) -> list[dict]:
        """Latents firing on each token of ``text`` (default: the text box); also shown below it."""
        text = self.text.value if text is None else text
        if not text.strip():
            self.text_out.value = "<i>type some text first</i>"
            return []
        rows = latents_on_text(self.model, self.sae, self.hook_name, text)
        selected = {int(v) for _, v in self.latent.options}
        self.text_out.value = table_html(
            ["token", "latents (activation); * = forget-relevant"],
            [
                [r["token"], ", ".join(f"{i}{'*' if i in selected else ''} ({v:.1f})" for i, v in r["latents"])]
                for r in rows
            ],
        )
        return rows


class SubspaceInspector(widgets.VBox):
    """Ranks, orthogonality and principal angles of the relevant/irrelevant subspaces; a slider
    rebuilds them from the first ``k`` selected latents."""

    def __init__(self, w_dec: Float[Tensor, "d_sae d_model"], relevant: Sequence[int], irrelevant: Sequence[int]):
        self.w_dec = w_dec
        self.relevant_all, self.irrelevant_all = list(relevant), list(irrelevant)
        kmax = max(1, min(len(self.relevant_all), len(self.irrelevant_all)))
        self.k = widgets.IntSlider(value=kmax, min=1, max=kmax, description="k latents")
        self.info = widgets.HTML()
        self.panel = FigurePanel()
        self.k.observe(lambda _: self.redraw(), "value")
        super().__init__([self.k, self.info, self.panel])
        self.redraw()

    def redraw(self) -> None:
        k = self.k.value
        self.pair = build_subspaces(
            self.w_dec, torch.tensor(self.relevant_all[:k]), torch.tensor(self.irrelevant_all[:k])
        )
        d = self.pair.diagnostics()
        self.info.value = table_html(
            ["relevant rank", "irrelevant rank", "dropped (rel/irr)", "orthogonality error", "min angle"],
            [
                [
                    d["relevant_rank"],
                    d["irrelevant_rank"],
                    f"{d['relevant_dropped']}/{d['irrelevant_dropped']}",
                    f"{d['orthogonality_error']:.1e}",
                    "n/a" if d["min_principal_angle_deg"] is None else f"{d['min_principal_angle_deg']:.1f}°",
                ]
            ],
        )
        self.panel.show(plot_principal_angles(d["principal_angles_deg"]))
