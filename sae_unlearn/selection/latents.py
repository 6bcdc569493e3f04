"""Latent selection: which SAE latents encode the forget data, and which are unrelated to it.

Per latent, statistics are gathered on forget tokens and on retain tokens (firing frequency,
mean activation, mean squared activation), then scored:

- ``frequency_ratio``: ``log((freq_forget + eps) / (freq_retain + eps))``;
- ``mean_diff``: ``mean_forget - mean_retain``;
- ``squared_mean_ratio``: ``log((E_forget[a²] + eps) / (E_retain[a²] + eps))`` (SSPU's
  importance ratio).

*Relevant* latents are the top-k by score among latents that fire on forget data; *irrelevant*
latents are the bottom-k among latents that fire somewhere (dead latents carry no meaning).
A threshold can replace or cap top-k. All functions are pure, on tensors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from sae_unlearn.utils import renamed_keyword

Scorer = Literal["frequency_ratio", "mean_diff", "squared_mean_ratio"]
SCORERS: tuple[str, ...] = ("frequency_ratio", "mean_diff", "squared_mean_ratio")


@dataclass
class LatentStats:
    """Per-latent activation statistics on forget and retain tokens."""

    freq_forget: Float[Tensor, " d_sae"]
    freq_retain: Float[Tensor, " d_sae"]
    mean_forget: Float[Tensor, " d_sae"]
    mean_retain: Float[Tensor, " d_sae"]
    sq_mean_forget: Float[Tensor, " d_sae"]
    sq_mean_retain: Float[Tensor, " d_sae"]
    n_forget: int
    n_retain: int


class NoForgetLatentsError(ValueError):
    """An SAE has no forget-specific latent: none fires on the forget data, or none is more active
    on forget than on retain data. :func:`select_latents` raises it; a selection over several hooks
    scores such a hook as non-discriminating instead (:mod:`sae_unlearn.selection.layers`)."""

    def __init__(self, message: str, hook: str, reason: str):
        super().__init__(message)
        self.hook = hook
        self.reason = reason
        """Why, in a few words (``"no latent fires on the forget data"`` ...)."""


@dataclass
class LatentSums:
    """Running per-latent sums on one side (forget or retain): token count, firing count, sum and
    sum of squares (float64). Folded batch by batch, so statistics over any number of tokens need
    ``O(d_sae)`` memory (:func:`stats_from_sums` turns a forget and a retain pair into :class:`LatentStats`)."""

    n: int
    fired: Float[Tensor, " d_sae"]
    total: Float[Tensor, " d_sae"]
    squares: Float[Tensor, " d_sae"]

    @classmethod
    def zeros(cls, d_sae: int) -> LatentSums:
        z = torch.zeros(d_sae, dtype=torch.float64)
        return cls(0, z.clone(), z.clone(), z.clone())

    def add(self, acts: Float[Tensor, "n d_sae"]) -> None:
        """Fold in one batch of latent activations (one row per token)."""
        if acts.shape[-1] != self.total.shape[0]:
            raise ValueError(f"activations have {acts.shape[-1]} latents but the sums hold {self.total.shape[0]}.")
        a = acts.detach().to("cpu", torch.float64)
        self.n += int(a.shape[0])
        self.fired += (a > 0).sum(0, dtype=torch.float64)
        self.total += a.sum(0)
        self.squares += a.pow(2).sum(0)

    def add_codes(self, n_tokens: int, latent: Int[Tensor, " nnz"], value: Float[Tensor, " nnz"]) -> None:
        """Fold in one batch given sparsely: ``n_tokens`` tokens whose non-zero activations are
        ``value`` at latent ``latent`` (the other activations are 0). Same sums as :meth:`add` on the
        dense rows, up to float64 summation order."""
        if latent.shape != value.shape:
            raise ValueError(f"latent indices and values differ in shape (nnz {latent.shape[0]} vs {value.shape[0]}).")
        d_sae = self.total.shape[0]
        idx, v = latent.detach().to("cpu", torch.long), value.detach().to("cpu", torch.float64)
        self.n += int(n_tokens)
        self.fired += torch.bincount(idx[v > 0], minlength=d_sae).double()
        self.total += torch.bincount(idx, weights=v, minlength=d_sae)
        self.squares += torch.bincount(idx, weights=v * v, minlength=d_sae)


def stats_from_sums(forget: LatentSums, retain: LatentSums) -> LatentStats:
    """Firing frequency, mean and mean-square activation of every latent from running sums."""
    if forget.n == 0 or retain.n == 0:
        raise ValueError(f"need forget and retain activations; got {forget.n} forget and {retain.n} retain tokens.")
    if forget.total.shape != retain.total.shape:
        raise ValueError(f"forget has {forget.total.shape[0]} latents but retain has {retain.total.shape[0]}.")
    return LatentStats(
        freq_forget=forget.fired / forget.n,
        freq_retain=retain.fired / retain.n,
        mean_forget=forget.total / forget.n,
        mean_retain=retain.total / retain.n,
        sq_mean_forget=forget.squares / forget.n,
        sq_mean_retain=retain.squares / retain.n,
        n_forget=forget.n,
        n_retain=retain.n,
    )


def latent_stats(
    forget_acts: Float[Tensor, "n_forget d_sae"], retain_acts: Float[Tensor, "n_retain d_sae"]
) -> LatentStats:
    """Firing frequency, mean and mean-square activation of every latent on both sides."""
    if forget_acts.shape[0] == 0 or retain_acts.shape[0] == 0:
        raise ValueError(
            f"need forget and retain activations; got {forget_acts.shape[0]} forget and "
            f"{retain_acts.shape[0]} retain tokens."
        )
    if forget_acts.shape[1] != retain_acts.shape[1]:
        raise ValueError(f"forget has {forget_acts.shape[1]} latents but retain has {retain_acts.shape[1]}.")
    sides = LatentSums.zeros(forget_acts.shape[1]), LatentSums.zeros(retain_acts.shape[1])
    sides[0].add(forget_acts)
    sides[1].add(retain_acts)
    return stats_from_sums(*sides)


def score_latents(
    stats: LatentStats, scorer: Scorer = "squared_mean_ratio", eps: float = 1e-4
) -> Float[Tensor, " d_sae"]:
    """How forget-specific each latent is (higher = more tied to the forget data)."""
    if scorer == "frequency_ratio":
        return torch.log((stats.freq_forget + eps) / (stats.freq_retain + eps))
    if scorer == "mean_diff":
        return stats.mean_forget - stats.mean_retain
    if scorer == "squared_mean_ratio":
        return torch.log((stats.sq_mean_forget + eps) / (stats.sq_mean_retain + eps))
    raise ValueError(f"unknown scorer {scorer!r}; choose one of {SCORERS}.")


@dataclass
class LatentSelection:
    """The selected forget-relevant and forget-irrelevant latents of one SAE."""

    hook: str
    scorer: str
    relevant: Int[Tensor, " k_rel"]
    """Latent indices, most forget-specific first."""
    relevant_scores: Float[Tensor, " k_rel"]
    irrelevant: Int[Tensor, " k_irr"]
    """Latent indices, least forget-related first."""
    irrelevant_scores: Float[Tensor, " k_irr"]
    scores: Float[Tensor, " d_sae"] = field(repr=False)
    stats: LatentStats = field(repr=False)

    def summary(self) -> dict:
        """Indices, scores and firing frequencies of the selected latents (JSON-ready)."""

        def rows(idx: Tensor) -> list[dict]:
            return [
                {
                    "latent": int(i),
                    "score": float(self.scores[i]),
                    "freq_forget": float(self.stats.freq_forget[i]),
                    "freq_retain": float(self.stats.freq_retain[i]),
                    "mean_forget": float(self.stats.mean_forget[i]),
                    "mean_retain": float(self.stats.mean_retain[i]),
                }
                for i in idx
            ]

        return {
            "hook": self.hook,
            "scorer": self.scorer,
            "relevant": rows(self.relevant),
            "irrelevant": rows(self.irrelevant),
        }

    @classmethod
    def empty(cls, stats: LatentStats, scorer: Scorer, hook: str = "") -> LatentSelection:
        """No latents on either side: the selection of an SAE with no forget-specific latent
        (:class:`NoForgetLatentsError`), kept so that every scored hook has a selection."""
        scores = score_latents(stats, scorer)
        none = torch.zeros(0, dtype=torch.long)
        return cls(hook, scorer, none, torch.zeros(0), none.clone(), torch.zeros(0), scores.float(), stats)

    def firing_contrast(self) -> dict[str, float]:
        """Mean firing frequency of the relevant latents on forget vs retain tokens, and their ratio."""
        f = float(self.stats.freq_forget[self.relevant].mean())
        r = float(self.stats.freq_retain[self.relevant].mean())
        return {"freq_forget": f, "freq_retain": r, "ratio": f / max(r, 1e-9)}


def select_latents(
    stats: LatentStats,
    n_latents: int = 32,
    scorer: Scorer = "squared_mean_ratio",
    threshold: float | None = None,
    hook: str = "",
    *,
    k: int | None = None,
) -> LatentSelection:
    """Top forget-relevant and bottom forget-irrelevant latents.

    Relevant latents must fire on forget data and score above 0 (more active on forget than on
    retain data); when fewer than ``n_latents`` qualify, only those are returned and a
    ``UserWarning`` says so (a latent that is not forget-specific must not steer unlearning). When
    none qualifies, :class:`NoForgetLatentsError` (a ``ValueError``) is raised.

    Args:
        stats: from :func:`latent_stats`.
        n_latents: how many latents on each side (at most); at most the SAE's width.
        scorer: see the module docstring.
        threshold: if given, relevant latents must score at least this (irrelevant at most
            ``-threshold``); still capped at ``n_latents``.
        hook: the SAE's hook name (recorded).
        k: deprecated name of ``n_latents`` (``k`` is the TopK SAE's active-latent count).
    """
    n_latents = renamed_keyword("k", "n_latents", k, n_latents, 32)
    if isinstance(n_latents, bool) or not isinstance(n_latents, int) or n_latents < 1:
        raise ValueError(f"n_latents={n_latents!r} must be an int >= 1.")
    d_sae = int(stats.freq_forget.shape[0])
    if n_latents > d_sae:
        raise ValueError(
            f"n_latents={n_latents} is more than the SAE has latents (d_sae={d_sae}); choose at most {d_sae} "
            "(a few percent of d_sae is typical)."
        )
    scores = score_latents(stats, scorer)
    fires_forget = stats.freq_forget > 0
    alive = fires_forget | (stats.freq_retain > 0)
    if not fires_forget.any():
        raise NoForgetLatentsError(
            f"no latent of {hook or 'the SAE'} fires on the forget data; check the SAE and the data.",
            hook,
            "no latent fires on the forget data",
        )
    specific = fires_forget & (scores > 0)
    if not specific.any():
        raise NoForgetLatentsError(
            f"no latent of {hook or 'the SAE'} is more active on forget than on retain data (scorer {scorer}); "
            "check the forget/retain split and the SAE.",
            hook,
            f"no latent is more active on forget than on retain data (scorer {scorer})",
        )
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype)
    rel_scores = torch.where(specific, scores, neg_inf)
    n_rel = min(n_latents, int(specific.sum()))
    if n_rel < n_latents:
        warnings.warn(
            f"only {n_rel} latents of {hook or 'the SAE'} are forget-specific (fire on forget data and score > 0 "
            f"with {scorer}); selecting those {n_rel}, not n_latents={n_latents}.",
            UserWarning,
            stacklevel=2,
        )
    order = torch.argsort(rel_scores, descending=True, stable=True)[:n_rel]
    irr_scores = torch.where(alive, scores, -neg_inf)
    irr_order = torch.argsort(irr_scores, descending=False, stable=True)
    irr_order = irr_order[~torch.isin(irr_order, order)][: min(n_latents, int(alive.sum()))]
    if threshold is not None:
        order = order[scores[order] >= threshold]
        irr_order = irr_order[scores[irr_order] <= -threshold]
        if len(order) == 0:
            raise ValueError(
                f"no latent scores >= threshold={threshold} (best: {float(rel_scores.max()):.3g}); lower the threshold."
            )
    return LatentSelection(
        hook=hook,
        scorer=scorer,
        relevant=order,
        relevant_scores=scores[order].float(),
        irrelevant=irr_order,
        irrelevant_scores=scores[irr_order].float(),
        scores=scores.float(),
        stats=stats,
    )
