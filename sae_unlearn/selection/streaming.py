"""Streaming layer and latent selection: the statistics of :func:`select_layer_and_latents`
without storing activations, for models where a stored capture would not fit.

At gemma-2-2b's shape one token's residual stream at every layer is 26 x 2304 x 2 bytes
(~120 KB), so a 10M-token forget/retain corpus would need ~1.2 TB on the stored path. Here each
batch of texts is run through the model (stopping at the deepest SAE's hook), encoded by every
SAE, folded into running sums and dropped:

- **pass 1** accumulates, per SAE and per side (forget/retain), each latent's firing count, sum
  and sum of squares (float64), which is everything :func:`~sae_unlearn.selection.latent_stats`
  computes, plus each SAE's reconstruction sums (L0, explained variance, dead latents, MSE).
  The relevant and irrelevant latents are then chosen exactly as on the stored path.
- **pass 2** needs those latents: a text's forget evidence is the largest, over its tokens, of
  the summed activation of the layer's relevant latents (see :mod:`sae_unlearn.selection.layers`),
  and a maximum of a sum cannot be assembled from per-latent totals. So the text is run a second
  time and only one number per text and SAE is kept. The AUROC, its bootstrap interval and the
  layer choice are then the stored path's, on the same per-text evidence.

Memory: one batch of activations and codes, ``O(d_sae)`` sums per SAE and ``O(n_texts)``
evidence values per SAE; nothing grows with the number of tokens. Time: two forward passes
(each stopping at the deepest hook) and two encodings per SAE. ``benchmarks/selection_memory.py``
measures both against a bare forward pass and against the stored path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.capture.capture import iter_activations
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.loading import check_sae_matches
from sae_unlearn.saes.metrics import ReconstructionSums
from sae_unlearn.selection.latents import LatentSelection, LatentSums, Scorer, select_latents, stats_from_sums
from sae_unlearn.selection.layers import LayerRule, SelectionResult, result_from_evidence
from sae_unlearn.utils import as_text_list, check_forget_retain


@torch.no_grad()
def _encode(sae: SAE, x: Float[Tensor, "n d_in"]) -> tuple[Tensor, Tensor]:
    """Codes and input of ``sae`` for rows ``x``, on the SAE's device and dtype."""
    x = x.to(device=sae.W_dec.device, dtype=sae.W_dec.dtype)
    return sae.encode(x), x


@torch.no_grad()
def select_layer_and_latents_streaming(
    model: HookedModel,
    saes: Mapping[str, SAE],
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    n_latents: int = 32,
    scorer: Scorer = "squared_mean_ratio",
    threshold: float | None = None,
    model_name: str | None = None,
    layer_rule: LayerRule = "deepest_tied",
    candidates: Collection[str] | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    progress: bool = True,
    reconstruction: bool = True,
) -> SelectionResult:
    """:func:`~sae_unlearn.selection.select_layer_and_latents` in two streaming passes over the text.

    Same scores, latents, intervals and layer rule as the stored path on the same texts (up to
    float summation order), with memory that does not grow with the number of tokens (see the
    module docstring). The SAEs' reconstruction statistics on these texts come back in
    :attr:`SelectionResult.sae_stats`.

    Args:
        model: the hooked model; activations are taken at the SAEs' hooks.
        saes: one SAE per hook; each is checked (hook, width, model) on the first batch, before
            the rest of the text is run.
        forget_texts, retain_texts: lists of texts, non-empty and disjoint.
        n_latents, scorer, threshold, model_name, layer_rule, candidates: as for the stored path.
        batch_size: texts per forward pass; max_length: truncate texts to this many tokens.
        progress: show a bar for each pass.
        reconstruction: also gather the SAEs' reconstruction statistics (one decode per batch
            and SAE); ``False`` leaves :attr:`SelectionResult.sae_stats` empty.
    """
    forget_texts, retain_texts = as_text_list(forget_texts, "forget_texts"), as_text_list(retain_texts, "retain_texts")
    check_forget_retain(forget_texts, retain_texts)
    if layer_rule not in ("deepest_tied", "best"):
        raise ValueError(f"layer_rule={layer_rule!r}; choose 'deepest_tied' or 'best'.")
    if not saes:
        raise ValueError("no SAEs given; pass {hook: SAE} (e.g. load_saes(...)).")
    hooks = model.validate_hooks(list(saes))
    n_forget = len(forget_texts)
    texts = forget_texts + retain_texts
    width = {h: int(saes[h].cfg.d_sae) for h in hooks}
    if isinstance(n_latents, bool) or not isinstance(n_latents, int) or n_latents < 1:
        raise ValueError(f"n_latents={n_latents!r} must be an int >= 1.")
    sides = {h: (LatentSums.zeros(width[h]), LatentSums.zeros(width[h])) for h in hooks}
    recon: dict[str, ReconstructionSums] = {}

    # pass 1: per-latent sums on both sides, reconstruction sums
    for batch in iter_activations(
        model, texts, hooks, batch_size, max_length=max_length, progress=progress, desc="selection pass 1/2"
    ):
        is_forget = batch.seq_index < n_forget
        for h in hooks:
            sae, x = saes[h], batch.activations[h]
            if h not in recon:  # first batch: refuse a wrong SAE before the remaining batches run
                check_sae_matches(sae, h, int(x.shape[-1]), model_name)
                recon[h] = ReconstructionSums(int(x.shape[-1]), width[h])
            z, xs = _encode(sae, x)
            if reconstruction:
                recon[h].add(xs, z, sae.decode(z))
            z = z.cpu()
            sides[h][0].add(z[is_forget])
            sides[h][1].add(z[~is_forget])
    selections: dict[str, LatentSelection] = {
        h: select_latents(stats_from_sums(*sides[h]), n_latents, scorer=scorer, threshold=threshold, hook=h)
        for h in hooks
    }

    # pass 2: one evidence value per text and SAE (max over the text's tokens of the relevant latents' sum)
    evidence = {h: torch.full((len(texts),), float("-inf")) for h in hooks}
    for batch in iter_activations(
        model, texts, hooks, batch_size, max_length=max_length, progress=progress, desc="selection pass 2/2"
    ):
        for h in hooks:
            z, _ = _encode(saes[h], batch.activations[h])
            token_ev = z[:, selections[h].relevant.to(z.device)].sum(-1).float().cpu()
            evidence[h] = evidence[h].scatter_reduce(0, batch.seq_index, token_ev, reduce="amax")
    present = torch.isfinite(evidence[hooks[0]])  # texts with at least one token after BOS
    is_forget_text = torch.arange(len(texts)) < n_forget
    pairs = {h: (evidence[h][present & is_forget_text], evidence[h][present & ~is_forget_text]) for h in hooks}
    stats = {h: r.stats() for h, r in recon.items()} if reconstruction else None
    return result_from_evidence(pairs, selections, layer_rule, candidates, stats)
