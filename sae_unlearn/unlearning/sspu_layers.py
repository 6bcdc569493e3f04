"""SSPU across layers: one SAE, one pair of subspaces and one steering target per edited layer.

Single-layer SSPU (:mod:`sae_unlearn.unlearning.sspu`) steers at the selected hook only and edits
the MLP output matrices of that block and the two before it, all constrained to the selected
SAE's relevant subspace. The logit lens and the tuned-lens probe still read the secret at the
earlier layers it leaves alone. This variant spreads the method over the layers:

- every steered layer ``l`` has its own SAE (at a hook ``h_l`` the block writes into, e.g.
  ``blocks.l.hook_resid_post``), its own latent selection (the stage selects latents at every
  hook) and so its own relevant and irrelevant subspaces;
- forget activations at every ``h_l`` are steered toward ``c_l · normalise(P_irr,l u_l)`` (the
  norm ``c_l`` scaled to that layer's forget activations; or, with ``target="mean_ablation"``,
  toward their own frozen values with layer ``l``'s relevant component mean-ablated); retain
  activations at every ``h_l`` are held at the frozen model's values; the losses are averaged
  over the layers;
- the edited matrices of layer ``l`` are those writing its MLP output (and, with
  ``writers=["mlp", "attn"]``, its attention output) into the residual stream, found through the
  bridge's mapping, and each step's change of them is projected onto *that layer's* relevant
  subspace (gradient or accumulated update, as in SSPU), plus SSPU's small ``‖ΔW‖²`` regulariser.

One forward pass up to the deepest steered hook serves every layer's loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from sae_unlearn.capture.capture import forward_to_hooks
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.models.weights import weight_layouts, writer_weight
from sae_unlearn.subspaces import Subspace, SubspacePair, build_subspaces, principal_angles
from sae_unlearn.unlearning.base import UnlearningResult, masked_mse
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.sspu import (
    ProjectedUpdates,
    SSPUConfig,
    configured_subspaces,
    masked_mean,
    mean_ablation_target,
    sspu_control,
)
from sae_unlearn.unlearning.steering import steering_coefs
from sae_unlearn.unlearning.trainer import GradientMethod, TrainRun


@dataclass
class SSPULayersConfig(SSPUConfig):
    """SSPU's settings plus which layers to steer and edit."""

    layers: list[int] | None = None
    """Blocks to steer (at their SAE's hook) and edit. ``None``: every block from the first to the
    selected hook's, where the stage has an SAE."""
    writers: list[str] = field(default_factory=lambda: ["mlp"])
    """Which of each block's matrices that write into the residual stream are edited: ``"mlp"`` (the
    MLP output matrix), ``"attn"`` (the attention output matrix), or both."""

    def __post_init__(self) -> None:
        if isinstance(self.layers, int | str):
            raise TypeError(f"layers={self.layers!r}; pass a list of block indices, e.g. layers=[0, 1, 2, 3].")
        if isinstance(self.writers, str):
            raise TypeError(f"writers={self.writers!r} is one string; pass a list, e.g. writers=[{self.writers!r}].")
        if (
            not self.writers
            or any(w not in ("mlp", "attn") for w in self.writers)
            or len(set(self.writers)) != len(self.writers)
        ):
            raise ValueError(f"writers={self.writers!r}; choose a non-empty list of 'mlp' and/or 'attn'.")
        super().__post_init__()
        if self.params is not None:
            raise ValueError(
                f"params={self.params!r}: SSPU across layers edits each steered layer's writer matrices "
                "(writers=[...]), constrained to that layer's own subspace; choose the blocks with layers=[...]."
            )
        if self.layers is not None:
            if not self.layers or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in self.layers):
                raise ValueError(f"layers={self.layers!r} must be a non-empty list of block indices >= 0.")
            if len(set(self.layers)) != len(self.layers):
                raise ValueError(f"layers={self.layers!r} lists a block twice.")


def layer_hooks(hooks: list[str], upto: int | None, layers: list[int] | None) -> dict[int, str]:
    """``{block: hook}``: the hook each steered block writes into, among the SAEs' ``hooks``.

    ``layers=None`` takes every block up to ``upto`` that some hook follows; a block asked for
    that no SAE hook follows, or two hooks following the same block, raise naming the hooks."""
    by_layer: dict[int, list[str]] = {}
    for h in hooks:
        layer = last_writer_layer(h)
        if layer is not None:
            by_layer.setdefault(layer, []).append(h)
    wanted = layers if layers is not None else [l for l in sorted(by_layer) if upto is None or l <= upto]
    missing = [l for l in wanted if l not in by_layer]
    if missing:
        raise ValueError(
            f"layers={wanted}: no SAE follows block(s) {missing}; the stage has SAEs at {hooks} "
            f"(blocks {sorted(by_layer)}). Fit SAEs there or choose among those blocks."
        )
    ambiguous = {l: by_layer[l] for l in wanted if len(by_layer[l]) > 1}
    if ambiguous:
        raise ValueError(f"several SAE hooks follow the same block: {ambiguous}; give the method one SAE per block.")
    if not wanted:
        raise ValueError(f"no SAE hook among {hooks} follows a block up to {upto}; nothing to steer.")
    return {l: by_layer[l][0] for l in sorted(wanted)}


@register("sspu_layers")
class SSPULayers(ProjectedUpdates, GradientMethod):
    """SSPU at several layers, each edited matrix constrained to its own layer's relevant subspace."""

    label = "SSPU (layers)"
    description = "SSPU at every layer up to the selected one, each with its own SAE's subspaces"
    config_class = SSPULayersConfig
    config: SSPULayersConfig

    def __init__(self, subspaces: Mapping[str, SubspacePair], config: SSPULayersConfig | None = None):
        """``subspaces``: ``{hook: SubspacePair}``, one per steered layer (the hook its block writes into)."""
        super().__init__(config or SSPULayersConfig())
        if not subspaces:
            raise ValueError("no subspaces given; pass {hook: SubspacePair}, one per steered layer.")
        cfg = self.config
        self.hooks: dict[int, str] = layer_hooks(list(subspaces), None, cfg.layers)
        subspaces = {h: subspaces[h] for h in self.hooks.values()}
        self.relevant: dict[str, Subspace] = {}
        self.irrelevant: dict[str, Subspace] = {}
        for h, pair in subspaces.items():
            self.relevant[h], self.irrelevant[h] = configured_subspaces(pair.relevant, pair.irrelevant, cfg, h)

    @classmethod
    def from_stage(cls, stage, settings: dict) -> SSPULayers:
        """Subspaces at each steered layer from the stage's SAEs and its per-hook latent selections."""
        config: SSPULayersConfig = cls.from_settings(settings)  # type: ignore[assignment]
        selected = last_writer_layer(stage.selection.hook)
        hooks = layer_hooks(list(stage.fit.saes), selected, config.layers)
        skipped = getattr(stage.selection, "skipped", {})
        dead = {h: skipped[h] for h in hooks.values() if h in skipped}
        if dead:
            keep = [layer for layer, h in hooks.items() if h not in dead]
            raise ValueError(
                f"sspu_layers would steer at {sorted(dead)}, but the selection skipped them ({dead}): their SAEs "
                f"have no forget-specific latent, so there is no subspace there. Pass layers={keep} (or fit SAEs "
                "that fire on the forget text)."
            )
        pairs = {}
        for h in hooks.values():
            sel = stage.selection.selections[h]
            pairs[h] = build_subspaces(stage.fit.saes[h].W_dec, sel.relevant, sel.irrelevant)
        return cls(pairs, config)

    def _writers(self, model: HookedModel) -> dict[str, str]:
        """``{parameter name: the hook whose subspace constrains it}``, layer by layer."""
        return {
            writer_weight(model, layer, role).name: hook  # type: ignore[arg-type]
            for layer, hook in self.hooks.items()
            for role in self.config.writers
        }

    def param_names(self, model: HookedModel) -> list[str]:
        return list(self._writers(model))

    def subspace_of(self, model: HookedModel) -> dict[str, Subspace]:
        """``{parameter name: the relevant subspace its changes are confined to}``."""
        return {n: self.relevant[h] for n, h in self._writers(model).items()}

    def check(self, model: HookedModel, forget_texts: list[str], retain_texts: list[str]) -> None:
        model.validate_hooks(list(self.hooks.values()))
        for h, rel in self.relevant.items():
            if rel.basis.shape[0] != model.d_model:
                raise ValueError(
                    f"the subspaces at {h} live in {rel.basis.shape[0]} dimensions but the model's residual stream "
                    f"has d_model={model.d_model}: they were built from an SAE of another model."
                )

    def setup(self, run: TrainRun) -> None:
        model, cfg = run.model, self.config
        hooks = list(self.hooks.values())
        layouts = weight_layouts(model)
        self._transposed = {n: layouts.get(n, False) for n in run.params}
        self._hook_of = self._writers(model)
        coefs = steering_coefs(model, run.forget_texts, cfg, hooks)
        run.state["controls"] = {
            h: sspu_control(self.irrelevant[h], coefs[h], cfg.seed + i).to(model.device) for i, h in enumerate(hooks)
        }
        run.state["frozen"] = [forward_to_hooks(model, b.input_ids, hooks) for b in run.retain_batches]
        if cfg.target == "mean_ablation":
            masks = [b.attention_mask for b in run.retain_batches]
            means = {h: masked_mean([f[h] for f in run.state["frozen"]], masks) for h in hooks}
            run.state["forget_targets"] = [
                {h: mean_ablation_target(a, self.relevant[h], means[h]) for h, a in acts.items()}
                for acts in (forward_to_hooks(model, b.input_ids, hooks) for b in run.forget_batches)
            ]

    def step_loss(
        self, run: TrainRun, forget: TokenBatch, forget_index: int, retain: TokenBatch, retain_index: int
    ) -> dict[str, Tensor]:
        hooks = list(self.hooks.values())
        fa = forward_to_hooks(run.model, forget.input_ids, hooks, detach=False)
        ra = forward_to_hooks(run.model, retain.input_ids, hooks, detach=False)
        frozen = run.state["frozen"][retain_index]
        fmask, rmask = forget.attention_mask, retain.attention_mask
        targets = (
            run.state["forget_targets"][forget_index]
            if self.config.target == "mean_ablation"
            else run.state["controls"]
        )
        per_forget = [masked_mse(fa[h], targets[h], fmask.to(fa[h].device)) for h in hooks]
        per_retain = [masked_mse(ra[h], frozen[h], rmask.to(ra[h].device)) for h in hooks]
        forget_loss = torch.stack(per_forget).mean()
        retain_loss = torch.stack(per_retain).mean()
        terms = {"forget_loss": forget_loss, "retain_loss": retain_loss}
        loss = forget_loss + self.config.alpha * retain_loss
        if self.config.reg_weight > 0:
            terms["regulariser"] = self.regulariser(run)
            loss = loss + terms["regulariser"]
        terms["loss"] = loss
        return terms

    def relevant_for(self, name: str) -> Subspace:
        return self.relevant[self._hook_of[name]]

    def finish(self, run: TrainRun, result: UnlearningResult) -> None:
        result.steering_coef = max(float(c.norm()) for c in run.state["controls"].values())
        residuals = self.subspace_residuals(run)
        per_layer = {}
        for h in self.hooks.values():
            angles = principal_angles(self.relevant[h], self.irrelevant[h])
            per_layer[h] = {
                "relevant_rank": self.relevant[h].rank,
                "irrelevant_rank": self.irrelevant[h].rank,
                "min_principal_angle_deg": float(angles.min()) if angles.numel() else None,
                "steering_coef": float(run.state["controls"][h].norm()),
            }
        result.extra = {
            "layers": list(self.hooks),
            "hooks": list(self.hooks.values()),
            "per_layer": per_layer,
            "out_of_subspace_residual": max(residuals.values()),
            "out_of_subspace_residual_per_param": residuals,
            "target": self.config.target,
        }
