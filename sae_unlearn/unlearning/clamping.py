"""SAE interventions as unlearning methods: no weight changes, a rewrite of SAE latents at inference.

These are the SAE baselines the SSPU paper and SAEBench compare against. Each measures the
chosen latents on the forget and retain texts at the selected layer (forward passes only),
builds an :class:`~sae_unlearn.interventions.SAEIntervention` and installs it on the model, so
that every later forward pass (evaluation, generation, export check, every attack of
``verify``) runs through it. The rules are explained in :mod:`sae_unlearn.interventions`.

- ``clamp_static`` (Farrell et al. 2024): ``f_i ← -c · f_i`` for the stage's top relevant latents
  (SSPU's selection), on every token after the first.
- ``clamp_zero``: ``f_i ← 0`` for the same latents: zero-ablation, the control.
- ``clamp_conditional`` (SAEBench; Khoriaty et al. 2025): ``f_i ← -v_i`` only where ``f_i > 0``.
- ``dsg`` (Muhamed et al. 2025, Dynamic SAE Guardrails): its own selection, Fisher-style:
  ``F_i = (E_forget f_i)²``, ``R_i = (E_retain f_i)²``; latents whose ``F_i / R_i`` is at or above
  the ``ratio_percentile``-th percentile of all latents' ratios (and ``F_i`` at or above the 5th
  percentile), ranked by ``F_i``; then a classifier threshold: the ``retain_percentile``-th
  percentile, over retain texts, of the share of tokens at which any chosen latent fires.

``v_i = multiplier ×`` the latent's mean activation over forget tokens where it fires.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor
from tqdm.auto import tqdm

from sae_unlearn.capture.capture import run_and_capture
from sae_unlearn.intervention_runtime import check_latent_indices
from sae_unlearn.interventions import InterventionRule, SAEIntervention
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.inputs import check_sae_inputs, sae_encode
from sae_unlearn.unlearning.base import UnlearningMethod, UnlearningResult
from sae_unlearn.unlearning.registry import register
from sae_unlearn.utils import DictConfig, check_forget_retain


@dataclass
class ClampConfig(DictConfig):
    """Settings of the SAE clamping methods (no training: no steps, no learning rate)."""

    hook: str = ""
    """The selected layer's hook (set by the pipeline): where the SAE intervention acts."""
    n_latents: int = 16
    """How many latents are rewritten (the stage's top relevant ones, most forget-specific first)."""
    multiplier: float = 2.0
    """``c``: the scaling (``clamp_static``) or the clamp value in units of each latent's mean
    forget activation (``clamp_conditional``, ``dsg``); unused by ``clamp_zero``."""
    batch_size: int = 64
    """Texts per forward pass while measuring the latents."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_latents < 1:
            raise ValueError(f"n_latents={self.n_latents} must be >= 1.")
        if self.multiplier < 0:
            raise ValueError(f"multiplier={self.multiplier} must be >= 0 (the edit is negative by construction).")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1.")


@dataclass
class DSGConfig(ClampConfig):
    """DSG's settings: the clamping ones plus its selection and classifier percentiles."""

    multiplier: float = 10.0
    """On the zoo models any multiplier from 5 up gives the same answers (benchmarks/method_sweep.py):
    what limits DSG there is its classifier, not the clamp."""
    ratio_percentile: float = 95.0
    """Keep latents whose forget/retain score ratio is at or above this percentile of all latents'."""
    retain_percentile: float = 95.0
    """Classifier threshold: this percentile of the retain texts' share of firing tokens."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("ratio_percentile", "retain_percentile"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name}={getattr(self, name)} must be a percentile in [0, 100].")


@dataclass
class TextLatentStats:
    """Per-latent activity on one set of texts (every token but each text's first), as the
    interventions rewrite it (the selection's :class:`~sae_unlearn.selection.latents.LatentStats`
    compares forget and retain tokens and counts every token)."""

    mean: Float[Tensor, " d_sae"]
    """Mean activation."""
    mean_active: Float[Tensor, " d_sae"]
    """Mean activation where the latent fires (0 where it never does)."""
    freq: Float[Tensor, " d_sae"]
    """Share of tokens where it fires."""
    n_tokens: int
    fires: list[Tensor] | None = field(default=None, repr=False)
    """Per batch of texts, a ``[batch, pos, d_sae]`` boolean: where each latent fires on a counted
    token (``keep_fires=True``); what :func:`firing_share` needs, so DSG encodes every text once."""
    counted: list[Tensor] | None = field(default=None, repr=False)
    """Per batch, a ``[batch, pos]`` boolean: which tokens are counted (``keep_fires=True``)."""


@torch.no_grad()
def text_latent_stats(
    model: HookedModel,
    sae: SAE,
    hook: str,
    texts: Sequence[str],
    batch_size: int = 64,
    progress: bool = False,
    keep_fires: bool = False,
) -> TextLatentStats:
    """Mean, mean-where-active and firing frequency of every SAE latent over ``texts`` at ``hook``
    (``keep_fires``: also where each latent fires, one boolean per token and latent).

    The texts are tokenized as the intervention will see them (the model's own tokenization, not
    the SAE's ``prepend_bos``); the activations are prepared as the intervention prepares them
    (:mod:`sae_unlearn.saes.inputs`), so the values measured here are those it rewrites."""
    check_sae_inputs(model, sae, hook)
    d_sae = int(sae.cfg.d_sae)
    total, active_sum, fired, n = torch.zeros(d_sae), torch.zeros(d_sae), torch.zeros(d_sae), 0
    fires: list[Tensor] = []
    counts: list[Tensor] = []
    for start in tqdm(range(0, len(texts), batch_size), desc="latent statistics", disable=not progress):
        f, counted = _encode_batch(model, sae, hook, texts[start : start + batch_size])
        if keep_fires:
            fires.append(((f > 0) & counted[..., None]).cpu())
            counts.append(counted.cpu())
        rows = f[counted].float().cpu()
        total += rows.sum(0)
        active_sum += rows.clamp_min(0).sum(0)
        fired += (rows > 0).float().sum(0)
        n += rows.shape[0]
    if n == 0:
        raise ValueError("the texts have no token after their first; give longer texts.")
    kept = (fires, counts) if keep_fires else (None, None)
    return TextLatentStats(total / n, active_sum / fired.clamp_min(1), fired / n, n, *kept)


def _encode_batch(
    model: HookedModel, sae: SAE, hook: str, texts: Sequence[str]
) -> tuple[Float[Tensor, "batch pos d_sae"], Tensor]:
    batch = model.tokenize(list(texts))
    acts = run_and_capture(model, batch.input_ids, [hook])[hook]
    f = sae_encode(sae, acts, hook)[0]
    counted = batch.attention_mask.bool().clone()
    counted[:, 0] = False  # the first token (BOS) is never rewritten, so never measured
    return f, counted.to(f.device)


def firing_share(stats: TextLatentStats, latents: Sequence[int]) -> Float[Tensor, " n_texts"]:
    """Per text: the share of its tokens (after the first) at which any of ``latents`` fires (DSG's
    statistic), from statistics gathered with ``keep_fires=True``."""
    if stats.fires is None or stats.counted is None:
        raise ValueError("firing_share needs text_latent_stats(..., keep_fires=True).")
    idx = torch.tensor(list(latents))
    out = []
    for fires, counted in zip(stats.fires, stats.counted, strict=True):
        fire = fires[..., idx].any(-1)
        out.append(fire.sum(1).float() / counted.sum(1).clamp_min(1).float())
    return torch.cat(out)


def dsg_select(
    forget: TextLatentStats, retain: TextLatentStats, n_latents: int, ratio_percentile: float = 95.0
) -> tuple[list[int], Float[Tensor, " d_sae"]]:
    """DSG's latents: ``F = mean_forget²``, ``R = mean_retain²``; keep ``F/R`` at or above its
    ``ratio_percentile``-th percentile and ``F`` at or above its 5th; rank by ``F``. Returns the
    chosen latents and every latent's ratio."""
    f_score, r_score = forget.mean.pow(2), retain.mean.pow(2)
    ratio = f_score / (r_score + 1e-21)
    keep = (ratio >= torch.quantile(ratio, ratio_percentile / 100)) & (f_score >= torch.quantile(f_score, 0.05))
    keep &= forget.freq > 0
    cand = keep.nonzero().flatten()
    order = cand[f_score[cand].argsort(descending=True, stable=True)]
    return [int(i) for i in order[:n_latents]], ratio


class InterventionMethod(UnlearningMethod):
    """A weight-free method: measures latents, installs an SAE intervention, trains nothing."""

    config_class = ClampConfig
    changes_weights = False
    rule: InterventionRule = "clamp"

    def __init__(self, config: DictConfig | None = None, sae: SAE | None = None, ranked: Sequence[int] = ()):
        super().__init__(config)
        self.sae = sae
        self.ranked = self._checked_ranked(ranked)
        """Latents most forget-specific first (the stage's relevant selection)."""

    def _checked_ranked(self, ranked: Sequence[int]) -> list[int]:
        """``ranked`` as distinct int latent indices of the SAE (a float such as ``1.7``, a bool or an index
        outside ``[0, d_sae)`` raises, naming it and the SAE's ``d_sae``); the range is checked once an SAE is set."""
        return check_latent_indices(ranked, int(self.sae.cfg.d_sae) if self.sae is not None else None, "ranked")

    @property
    def clamp_config(self) -> ClampConfig:
        """The config, typed (always a :class:`ClampConfig`: the constructor checks it)."""
        assert isinstance(self.config, ClampConfig)
        return self.config

    def layer_sae(self) -> SAE:
        """The SAE at the hook (raises when the method was built without one)."""
        if self.sae is None:
            raise ValueError(f"{type(self).__name__} needs the layer's SAE; build it with from_stage or pass sae=.")
        return self.sae

    @classmethod
    def from_stage(cls, stage, settings: dict) -> UnlearningMethod:
        config = cls.from_settings(settings)
        hook = getattr(config, "hook", "")
        if hook not in stage.fit.saes:
            raise KeyError(f"the stage has no SAE at {hook!r}; its SAEs are at {sorted(stage.fit.saes)}.")
        relevant = stage.selection.latents.relevant.tolist() if stage.selection.hook == hook else []
        return cls(config, sae=stage.fit.saes[hook], ranked=relevant)

    def choose(
        self, model: HookedModel, forget: list[str], retain: list[str], progress: bool
    ) -> tuple[list[int], list[float], float | None, dict]:
        """The latents, their values, the classifier threshold (DSG) and facts for the result."""
        cfg = self.clamp_config
        stats = text_latent_stats(model, self.layer_sae(), cfg.hook, forget, cfg.batch_size, progress)
        if not self.ranked:
            raise ValueError(
                f"{type(self).__name__} rewrites the stage's relevant latents; build it with from_stage "
                "(pipeline.load_method) or pass ranked=[latent, ...]."
            )
        chosen = self.ranked[: cfg.n_latents]
        silent = [i for i in chosen if stats.freq[i] == 0]
        if silent:
            warnings.warn(f"latents {silent} never fire on the forget texts; they are left out.", stacklevel=3)
            chosen = [i for i in chosen if i not in silent]
        if not chosen:
            raise ValueError("none of the chosen latents fires on the forget texts; check the SAE and the selection.")
        values = self.values(stats, chosen)
        return chosen, values, None, {"mean_forget_active": [float(stats.mean_active[i]) for i in chosen]}

    def values(self, stats: TextLatentStats, chosen: list[int]) -> list[float]:
        m = float(self.clamp_config.multiplier)
        if self.rule == "scale":
            return [m] * len(chosen)
        if self.rule == "zero":
            return [0.0] * len(chosen)
        return [m * float(stats.mean_active[i]) for i in chosen]

    def apply(
        self,
        model: HookedModel,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        progress: bool = True,
        on_step: Callable[[dict], None] | None = None,  # noqa: ARG002 - nothing is trained, no steps
    ) -> UnlearningResult:
        """Measure the latents on the texts and install the intervention on ``model`` (weights untouched)."""
        forget, retain = check_forget_retain(forget_texts, retain_texts)
        sae = self.layer_sae()
        self.ranked = self._checked_ranked(self.ranked)  # the SAE may have been set after construction
        if model.intervention is not None:
            raise ValueError(
                "the model already has an SAE intervention installed; load a fresh copy (its activations would be "
                "measured through the old one)."
            )
        hook = self.clamp_config.hook
        model.validate_hooks([hook])
        t0 = time.perf_counter()
        chosen, values, threshold, facts = self.choose(model, forget, retain, progress)
        iv = SAEIntervention(
            hook=hook,
            sae=sae,
            rule=self.rule,
            latents=chosen,
            values=values,
            threshold=threshold,
            method=self.name,
            info={"multiplier": float(self.clamp_config.multiplier), **facts},
        )
        model.set_intervention(iv)
        return UnlearningResult(
            method=self.name,
            config=self.config.to_dict(),
            seconds=time.perf_counter() - t0,
            extra={"rule": self.rule, "latents": chosen, "values": values, "threshold": threshold, "weight_free": True},
        )


@register("clamp_static")
class StaticClamp(InterventionMethod):
    label = "Clamp"
    description = "SAE latents scaled by -c wherever they fire (Farrell et al.); no weight change"
    rule = "scale"


@register("clamp_zero")
class ZeroAblation(InterventionMethod):
    label = "Zero-ablate"
    description = "SAE latents set to 0 (the clamping control); no weight change"
    rule = "zero"


@register("clamp_conditional")
class ConditionalClamp(InterventionMethod):
    label = "Cond. clamp"
    description = "SAE latents clamped to -c x their mean only where they fire (SAEBench); no weight change"
    rule = "clamp"


@register("dsg")
class DSG(InterventionMethod):
    label = "DSG"
    description = "Dynamic SAE Guardrails: Fisher-ranked latents clamped on inputs a classifier flags; no weight change"
    config_class = DSGConfig
    rule = "dsg"

    def choose(
        self, model: HookedModel, forget: list[str], retain: list[str], progress: bool
    ) -> tuple[list[int], list[float], float | None, dict]:
        cfg = self.config
        assert isinstance(cfg, DSGConfig)
        sae = self.layer_sae()
        fs = text_latent_stats(model, sae, cfg.hook, forget, cfg.batch_size, progress, keep_fires=True)
        rs = text_latent_stats(model, sae, cfg.hook, retain, cfg.batch_size, progress, keep_fires=True)
        chosen, ratio = dsg_select(fs, rs, cfg.n_latents, cfg.ratio_percentile)
        if not chosen:
            raise ValueError(
                "DSG found no latent that fires on the forget texts with a forget/retain ratio above the "
                f"{cfg.ratio_percentile}th percentile; lower ratio_percentile."
            )
        shares = firing_share(rs, chosen)
        threshold = float(torch.quantile(shares, cfg.retain_percentile / 100))
        if threshold >= 1.0:
            raise ValueError(
                f"the chosen latents fire on every token of at least {100 - cfg.retain_percentile:.0f}% of the retain "
                "texts, so no threshold separates forget from retain; lower n_latents or raise ratio_percentile."
            )
        forget_shares = firing_share(fs, chosen)
        facts = {
            "mean_forget_active": [float(fs.mean_active[i]) for i in chosen],
            "ratio": [float(ratio[i]) for i in chosen],
            "forget_flagged": float((forget_shares > threshold).float().mean()),
            "retain_flagged": float((shares > threshold).float().mean()),
        }
        return chosen, self.values(fs, chosen), threshold, facts
