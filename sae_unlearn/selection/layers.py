"""Layer selection: at which layer do SAE latents best separate forget from retain data?

For every layer's SAE, latents are scored (:mod:`sae_unlearn.selection.latents`) and the top-k
forget-relevant ones taken. Each token gets a *forget evidence*, the summed activation of those
latents, and each text the largest evidence among its tokens (a fact about a forget person is
recognisable at its name, not at "lives in"). The layer score is the AUROC of that text evidence
between forget texts and retain texts (0.5 = no separation, 1.0 = every forget text above every
retain text). Every layer's score is kept as evidence, with a bootstrap interval over the texts
(:func:`auroc_interval`): with 76 forget texts (the secrets model) each score is known to about
+-0.015, so 0.943 against 0.947 singles out neither layer.

The layer is chosen among *candidate* layers (the pipeline passes those with the whole edit
upstream: RMU and SSPU update the chosen layer's MLP output matrix and the two before it, so
layers 0 and 1 cannot be edited as configured; their scores are still reported). Among the
candidates (``layer_rule="deepest_tied"``, the default) it is the deepest one whose interval
reaches the best candidate's: among layers these texts cannot tell apart, the deepest holds the
forget facts most fully assembled. ``layer_rule="best"`` takes the highest score (the earlier
layer on an exact tie). On the zoo both choices matter. GPT-2's best layer is 0 (AUROC 0.982
against 0.95-0.96 elsewhere): steered there, with one matrix to edit, neither method forgets
(forget accuracy 0.50-0.67 against the oracle's 0.12), while at layers 2 and 3 both forget to
0.00-0.08. Gemma-2's layers 2 and 3 tie; at layer 2 (its sandwich norms cap what each block
writes) both methods stay at 0.38 against the oracle's 0.04, at layer 3 they reach 0.08.

A hook whose SAE has no forget-specific latent (none fires on the forget data, or none is more
active there than on retain data; an SAE that does not fit the model, or a layer that does not
tell these texts apart) has no evidence to give: it scores 0.5 (chance), is left out of the
choice, and is listed with the reason in :attr:`SelectionResult.skipped` (a ``UserWarning`` names
it). Only when no candidate hook is left does the selection fail, naming them all.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.capture.store import ActivationStore
from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.saes.loading import check_sae_matches
from sae_unlearn.saes.metrics import SAEStats, encode_batched
from sae_unlearn.selection.config import LayerRule, SAEStageConfig, stage_config
from sae_unlearn.selection.latents import (
    LatentSelection,
    LatentSums,
    NoForgetLatentsError,
    Scorer,
    select_latents,
    stats_from_sums,
)


def auroc(pos: Float[Tensor, " n_pos"], neg: Float[Tensor, " n_neg"]) -> float:
    """Area under the ROC curve of ``pos`` vs ``neg`` scores (Mann-Whitney U, ties count half)."""
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("auroc needs at least one positive and one negative score.")
    both = torch.cat([pos, neg]).double()
    _, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    # average rank of each distinct value (1-based)
    ends = torch.cumsum(counts, 0).double()
    avg_rank = ends - (counts.double() - 1) / 2
    ranks = avg_rank[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


AUROC_BOOTSTRAP_SAMPLES = 1000
"""Bootstrap replicates behind :attr:`SelectionResult.layer_score_intervals`."""
AUROC_BOOTSTRAP_SEED = 0
"""Seed of those replicates (the intervals are the same on every run)."""


def weighted_auroc(
    pos: Float[Tensor, " n_pos"],
    neg: Float[Tensor, " n_neg"],
    pos_weights: Float[Tensor, "n_rep n_pos"],
    neg_weights: Float[Tensor, "n_rep n_neg"],
) -> Float[Tensor, " n_rep"]:
    """:func:`auroc` with every score counted ``weight`` times, for each row of weights at once.

    Row ``r`` is the AUROC of ``pos`` repeated ``pos_weights[r]`` times against ``neg`` repeated
    ``neg_weights[r]`` times (ties count half); with a bootstrap replicate's draw counts as the
    weights, that is the replicate's AUROC without materialising the resampled scores. Every row
    needs some positive and some negative weight.
    """
    if bool((pos_weights.sum(1) <= 0).any()) or bool((neg_weights.sum(1) <= 0).any()):
        raise ValueError("every row of weights needs a positive total on both sides.")
    neg_sorted, order = neg.double().sort()
    w_neg = neg_weights.double()[:, order]
    cum = torch.cat([torch.zeros(w_neg.shape[0], 1, dtype=torch.float64), w_neg.cumsum(1)], dim=1)
    p = pos.double().contiguous()
    below = cum[:, torch.searchsorted(neg_sorted, p, right=False)]  # weight of negatives < each positive
    tied = cum[:, torch.searchsorted(neg_sorted, p, right=True)] - below  # ... and == each positive
    w_pos = pos_weights.double()
    return (w_pos * (below + 0.5 * tied)).sum(1) / (w_pos.sum(1) * w_neg.sum(1))


def _draw_counts(n: int, reps: int, generator: torch.Generator) -> Float[Tensor, "reps n"]:
    """How often each of ``n`` items is drawn in each of ``reps`` resamples of size ``n`` with replacement."""
    idx = torch.randint(0, n, (reps, n), generator=generator)
    return torch.zeros(reps, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(reps, n, dtype=torch.float64))


def auroc_interval(
    pos: Float[Tensor, " n_pos"],
    neg: Float[Tensor, " n_neg"],
    n_boot: int = AUROC_BOOTSTRAP_SAMPLES,
    level: float = 0.95,
    seed: int = AUROC_BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of :func:`auroc` of ``pos`` vs ``neg``.

    The positive and the negative scores are resampled separately (with replacement, each side
    keeping its size) ``n_boot`` times; the interval holds the central ``level`` of the replicate
    AUROCs. It says how much the score would move on another sample of texts like these, which
    is what decides whether one layer really separates better than another. Deterministic: the
    resamples come from a generator seeded with ``seed``.
    """
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("auroc_interval needs at least one positive and one negative score.")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}.")
    pos, neg = pos.detach().cpu(), neg.detach().cpu()
    g = torch.Generator().manual_seed(seed)
    chunk = max(1, 2_000_000 // (pos.numel() + neg.numel()))  # bounds the memory of one batch of replicates
    reps = []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        reps.append(weighted_auroc(pos, neg, _draw_counts(pos.numel(), m, g), _draw_counts(neg.numel(), m, g)))
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(torch.cat(reps), q).tolist()
    return low, high


def _text_evidence(
    token_evidence: Float[Tensor, " n_tokens"], seq_index: Tensor, forget_mask: Bool[Tensor, " n_tokens"]
) -> tuple[Float[Tensor, " n_forget_texts"], Float[Tensor, " n_retain_texts"]]:
    """Max token evidence per text, split into forget texts and retain texts."""
    n_seq = int(seq_index.max()) + 1
    per_text = torch.full((n_seq,), float("-inf"), dtype=token_evidence.dtype)
    per_text = per_text.scatter_reduce(0, seq_index, token_evidence, reduce="amax")
    is_forget = torch.zeros(n_seq, dtype=torch.bool).scatter(0, seq_index[forget_mask], True)
    present = torch.zeros(n_seq, dtype=torch.bool).scatter(0, seq_index, True)
    return per_text[is_forget & present], per_text[~is_forget & present]


@dataclass
class SelectionResult:
    """The chosen layer, its latent selection, and every layer's evidence."""

    hook: str
    """The chosen hook (its layer is :attr:`layer`)."""
    layer: int | None
    layer_scores: dict[str, float]
    """AUROC of forget evidence (forget texts vs retain texts) per hook."""
    selections: dict[str, LatentSelection]
    """Latent selection of every hook."""
    layer_score_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """95% bootstrap interval ``(low, high)`` of each hook's score (:func:`auroc_interval`, forget
    and retain texts resampled, fixed seed). Layers whose intervals overlap are not told apart
    by these texts."""
    sae_stats: dict[str, SAEStats] = field(default_factory=dict)
    """Each SAE's reconstruction statistics on the selection text, gathered on the way by the
    streaming path (:func:`~sae_unlearn.selection.streaming.select_layer_and_latents_streaming`);
    empty on the stored path, whose caller has the activations."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Hooks left out of the layer choice, each with the reason: their SAE has no forget-specific
    latent (:class:`~sae_unlearn.selection.latents.NoForgetLatentsError`). Such a hook scores 0.5
    with the interval ``(0.5, 0.5)``, and its selection in :attr:`selections` is empty."""

    @property
    def latents(self) -> LatentSelection:
        """The latent selection at the chosen hook."""
        return self.selections[self.hook]

    @property
    def selection(self) -> LatentSelection:
        """Deprecated name of :attr:`latents` (``stage.selection.selection`` read badly)."""
        warnings.warn(
            "SelectionResult.selection is deprecated; use SelectionResult.latents.", DeprecationWarning, stacklevel=2
        )
        return self.latents


def select_layer_and_latents(
    saes: Mapping[str, SAE],
    store: ActivationStore,
    forget_mask: Bool[Tensor, " n_tokens"],
    n_latents: int | SAEStageConfig = 32,
    *,
    model_name: str | None = None,
    **settings: Any,
) -> SelectionResult:
    """Score every hook's SAE, choose the layer (:func:`choose_layer`), select its latents.

    The store is read twice in chunks of ``SELECTION_CHUNK_ROWS`` rows (per-latent sums, then each
    token's evidence), so memory beyond the store is one chunk's codes, whatever its size. Without
    a store, :func:`~sae_unlearn.selection.streaming.select_layer_and_latents_streaming` gives the
    same result from the text.

    Args:
        saes: one SAE per hook (the hooks must be in ``store``); each must have been trained at
            that hook (its metadata) and be as wide as the activations there.
        store: captured activations of forget and retain text.
        forget_mask: boolean, which rows of ``store`` are forget tokens (the rest are retain),
            e.g. ``store.seq_index < len(forget_texts)``. An integer 0/1 mask raises (it would
            index rows, not select them).
        n_latents: how many latents to select, or an :class:`~sae_unlearn.selection.config.SAEStageConfig`
            whose ``n_latents``, ``scorer``, ``threshold`` and ``layer_rule`` are used.
        model_name: if given, SAEs whose metadata names another model are refused.
        settings: fields of the config by keyword: ``scorer``, ``threshold`` (see
            :func:`select_latents`), ``layer_rule`` (``deepest_tied`` or ``best``; see
            :func:`choose_layer`), ``candidates`` (the hooks the layer may be chosen from; default
            all; every hook is scored); ``k`` is ``n_latents``' deprecated name.

    Raises:
        SAEMismatchError: an SAE's hook, width or model does not match.
    """
    cfg = stage_config(n_latents, settings, 32, "select_layer_and_latents")
    candidates = cfg.candidates
    store.check_row_mask(forget_mask)
    if not forget_mask.any() or forget_mask.all():
        raise ValueError("forget_mask must mark some rows as forget and some as retain.")
    if not saes:
        raise ValueError("no SAEs given; pass {hook: SAE} (e.g. fit_saes(...).saes).")
    missing = [h for h in saes if h not in store.hooks]
    if missing:
        raise KeyError(f"SAEs given for {missing}, which the store did not capture (it holds {store.hooks}).")
    first = next(store.iter_shards())
    for hook, sae in saes.items():
        check_sae_matches(sae, hook, int(first[hook].shape[-1]), model_name)
    seq = store.seq_index
    # two passes over the store in chunks: per-latent sums, then each token's evidence; the codes
    # of all tokens are never held at once (memory: the store plus one chunk's codes)
    sums = {h: (LatentSums.zeros(int(s.cfg.d_sae)), LatentSums.zeros(int(s.cfg.d_sae))) for h, s in saes.items()}
    for rows, chunk in _chunks(store, list(saes)):
        is_forget = forget_mask[rows]
        for hook, sae in saes.items():
            z = encode_batched(sae, chunk[hook], hook=hook)
            sums[hook][0].add(z[is_forget])
            sums[hook][1].add(z[~is_forget])
    selections, skipped = select_per_hook(sums, cfg.n_latents, cfg.scorer, cfg.threshold, candidates)
    scored = [h for h in saes if h not in skipped]
    token_evidence = {h: torch.empty(store.n_tokens) for h in scored}
    for rows, chunk in _chunks(store, scored):
        for hook in scored:
            z = encode_batched(saes[hook], chunk[hook], hook=hook)
            token_evidence[hook][rows] = z[:, selections[hook].relevant].sum(-1).float()
    evidence = {h: _text_evidence(token_evidence[h], seq, forget_mask) for h in scored}  # (forget, retain) texts
    return result_from_evidence(evidence, selections, cfg.layer_rule, candidates, skipped=skipped)


def select_per_hook(
    sums: Mapping[str, tuple[LatentSums, LatentSums]],
    n_latents: int,
    scorer: Scorer,
    threshold: float | None,
    candidates: Collection[str] | None = None,
) -> tuple[dict[str, LatentSelection], dict[str, str]]:
    """Each hook's latent selection from its (forget, retain) sums, and the hooks skipped with why.

    A hook whose SAE has no forget-specific latent (:class:`NoForgetLatentsError`) gets an empty
    selection, a ``UserWarning`` naming it, and an entry in the skipped ``{hook: reason}``. When
    every candidate hook (default: every hook) is skipped, nothing can be chosen: ``ValueError``
    naming them all. Any other error of :func:`select_latents` (a threshold no latent reaches) is
    raised as it is.
    """
    selections: dict[str, LatentSelection] = {}
    skipped: dict[str, str] = {}
    for h, (forget, retain) in sums.items():
        stats = stats_from_sums(forget, retain)
        try:
            selections[h] = select_latents(stats, n_latents, scorer=scorer, threshold=threshold, hook=h)
        except NoForgetLatentsError as e:
            selections[h] = LatentSelection.empty(stats, scorer, h)
            skipped[h] = e.reason
    pool = list(sums) if candidates is None else [h for h in sums if h in set(candidates)]
    if pool and all(h in skipped for h in pool):
        listed = "; ".join(f"{h}: {skipped[h]}" for h in pool)
        raise ValueError(
            f"no {'candidate ' if candidates is not None else ''}hook has a forget-specific SAE latent, so no layer "
            f"can be chosen ({listed}). Check that the SAEs were trained on this model at these hooks (their "
            "reconstruction statistics) and that the forget texts differ in content from the retain texts."
        )
    for h, reason in skipped.items():
        warnings.warn(
            f"{h} is left out of the layer choice (scored 0.5): {reason}. Its SAE may not fit the model there, "
            "or the layer does not tell forget from retain text apart.",
            UserWarning,
            stacklevel=3,
        )
    return selections, skipped


def result_from_evidence(
    evidence: Mapping[str, tuple[Float[Tensor, " n_forget_texts"], Float[Tensor, " n_retain_texts"]]],
    selections: dict[str, LatentSelection],
    layer_rule: LayerRule = "deepest_tied",
    candidates: Collection[str] | None = None,
    sae_stats: dict[str, SAEStats] | None = None,
    skipped: Mapping[str, str] | None = None,
) -> SelectionResult:
    """Score each hook (AUROC of its forget vs retain text evidence, with a bootstrap interval),
    choose the layer (:func:`choose_layer`) and assemble the result (both selection paths end here).

    ``skipped`` (``{hook: reason}``, from :func:`select_per_hook`) hooks need no evidence: they score
    0.5 with the interval ``(0.5, 0.5)`` and are not chosen."""
    skipped = dict(skipped or {})
    order = list(selections) + [h for h in evidence if h not in selections]
    scores = {h: 0.5 if h in skipped else auroc(*evidence[h]) for h in order}
    intervals = {h: (0.5, 0.5) if h in skipped else auroc_interval(*evidence[h]) for h in order}
    pool = [h for h in (scores if candidates is None else candidates) if h not in skipped]
    if not pool:
        raise ValueError(f"every candidate hook was skipped, none can be chosen: {skipped}.")
    chosen = choose_layer(scores, intervals, layer_rule, pool)
    return SelectionResult(
        hook=chosen,
        layer=hook_layer(chosen),
        layer_scores=scores,
        selections=selections,
        layer_score_intervals=intervals,
        sae_stats=sae_stats or {},
        skipped=skipped,
    )


SELECTION_CHUNK_ROWS = 8192
"""Rows of the store encoded at once by the stored selection path."""


def _chunks(store: ActivationStore, hooks: list[str]) -> Iterator[tuple[slice, dict[str, Tensor]]]:
    """The store's rows in order, ``SELECTION_CHUNK_ROWS`` at a time: ``(rows, {hook: activations})``."""
    offset = 0
    for shard in store.iter_shards():
        n = int(shard[hooks[0]].shape[0])
        for i in range(0, n, SELECTION_CHUNK_ROWS):
            j = min(n, i + SELECTION_CHUNK_ROWS)
            yield slice(offset + i, offset + j), {h: shard[h][i:j] for h in hooks}
        offset += n


def _depth(hook: str) -> int:
    layer = hook_layer(hook)
    return -1 if layer is None else layer


def choose_layer(
    scores: Mapping[str, float],
    intervals: Mapping[str, tuple[float, float]],
    rule: LayerRule = "deepest_tied",
    candidates: Collection[str] | None = None,
) -> str:
    """The hook to unlearn at, from each hook's score and its interval (see the module docstring).

    Only ``candidates`` (default: every scored hook) may be chosen. ``deepest_tied``: the deepest
    candidate whose interval's upper end reaches the lower end of the best-scoring candidate's
    interval. ``best``: the highest-scoring candidate, the earlier hook on an exact tie.
    """
    if rule not in ("deepest_tied", "best"):
        raise ValueError(f"layer_rule={rule!r}; choose 'deepest_tied' or 'best'.")
    pool = list(scores) if candidates is None else [h for h in scores if h in set(candidates)]
    if not pool:
        raise ValueError(f"none of the candidate hooks {sorted(candidates or [])} was scored ({sorted(scores)}).")
    scores = {h: scores[h] for h in pool}
    best = max(scores, key=lambda h: (scores[h], -_depth(h)))
    if rule == "best":
        return best
    tied = [h for h in scores if intervals[h][1] >= intervals[best][0]]
    return max(tied, key=lambda h: (_depth(h), scores[h]))
