"""Streaming layer and latent selection: the statistics of :func:`select_layer_and_latents`
without storing activations, for models where a stored capture would not fit.

At gemma-2-2b's shape one token's residual stream at every layer is 26 x 2304 x 2 bytes
(~120 KB), so a 10M-token forget/retain corpus would need ~1.2 TB on the stored path. Here the
text is run through the model once, batch by batch (stopping at the deepest SAE's hook); each
batch is encoded by every SAE, and of its codes only the non-zero ones are kept:

- they are folded into running sums, per SAE and per side (forget/retain): each latent's firing
  count, sum and sum of squares (float64), which is everything
  :func:`~sae_unlearn.selection.latent_stats` computes, plus each SAE's reconstruction sums (L0,
  explained variance, dead latents, MSE);
- they are appended to a temporary file per SAE (:class:`~sae_unlearn.selection.codes.CodeSpill`):
  a text's forget evidence is the largest, over its tokens, of the summed activation of the
  layer's relevant latents (see :mod:`sae_unlearn.selection.layers`), which are chosen only once
  every token is summed, and a maximum of a sum cannot be rebuilt from per-latent totals.

After the pass the relevant and irrelevant latents are chosen exactly as on the stored path, and
each file is read back once to give one evidence value per text and SAE, bit for bit what the
dense codes give. The AUROC, its bootstrap interval and the layer choice are then the stored
path's on the same per-text evidence (a hook with no forget-specific latent is skipped as there).

Memory: one batch of activations, one block of its codes (:data:`ENCODE_BLOCK_BYTES`),
``O(d_sae)`` sums per SAE and ``O(n_texts)`` evidence values; nothing in memory grows with the
number of tokens. Disk: per token and SAE, 8 bytes plus ``L0 x (2 + 4)`` bytes (int16 index,
float32 value; 8 bytes a code above 32768 latents): about 0.4 KB at L0 = 64, 20 GB for 10M tokens
at five SAEs, in ``spill_dir`` (default the system's temporary
folder), removed when the selection returns or fails. Time: one forward pass to the deepest hook,
one encoding of every token by every SAE, the sparse fold and a sequential write and read of the
spill (and, by default, one decode per SAE for the reconstruction statistics).
``benchmarks/selection_memory.py`` measures it against that floor and against the stored path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from sae_unlearn.capture.capture import iter_activations
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.inputs import capture_inputs, sae_encode
from sae_unlearn.saes.loading import check_sae_matches
from sae_unlearn.saes.metrics import ReconstructionSums
from sae_unlearn.selection.codes import CodeSpill
from sae_unlearn.selection.config import SAEStageConfig, stage_config
from sae_unlearn.selection.latents import LatentSums
from sae_unlearn.selection.layers import SelectionResult, result_from_evidence, select_per_hook
from sae_unlearn.utils import as_text_list, check_forget_retain

#: The most bytes of one SAE's dense float32 codes encoded at once (a block of a batch's tokens).
ENCODE_BLOCK_BYTES = 64 * 2**20


@torch.no_grad()
def select_layer_and_latents_streaming(
    model: HookedModel,
    saes: Mapping[str, SAE],
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    n_latents: int | SAEStageConfig = 32,
    *,
    model_name: str | None = None,
    progress: bool = True,
    **settings: Any,
) -> SelectionResult:
    """:func:`~sae_unlearn.selection.select_layer_and_latents` in one streaming pass over the text.

    Same scores, latents, intervals and layer rule as the stored path on the same texts (up to
    float summation order), with host memory that does not grow with the number of tokens; the
    SAEs' sparse codes go to a temporary file (see the module docstring). The SAEs'
    reconstruction statistics on these texts come back in :attr:`SelectionResult.sae_stats`.

    Args:
        model: the hooked model; activations are taken at the SAEs' hooks.
        saes: one SAE per hook; each is checked (hook, width, model) on the first batch, before
            the rest of the text is run, and fed what it was trained on (BOS, context size, centring:
            :mod:`sae_unlearn.saes.inputs`).
        forget_texts, retain_texts: lists of texts, non-empty and disjoint.
        n_latents, model_name: as for the stored path (``n_latents`` may be an
            :class:`~sae_unlearn.selection.config.SAEStageConfig`).
        progress: show a progress bar.
        settings: fields of the config by keyword: ``scorer``, ``threshold``, ``layer_rule``,
            ``candidates`` as for the stored path; ``batch_size`` (texts per forward pass, default 64);
            ``max_length`` (truncate texts to this many tokens); ``reconstruction`` (default
            ``True``: also gather the SAEs' reconstruction statistics, one decode per batch and
            SAE; ``False`` leaves :attr:`SelectionResult.sae_stats` empty); ``spill_dir`` (folder
            for the temporary code files, default the system's temporary folder; they need about
            ``8 + 6 x L0`` bytes per token and SAE and are removed on return).
    """
    forget_texts, retain_texts = as_text_list(forget_texts, "forget_texts"), as_text_list(retain_texts, "retain_texts")
    check_forget_retain(forget_texts, retain_texts)
    cfg = stage_config(n_latents, settings, 32, "select_layer_and_latents_streaming")
    candidates = cfg.candidates
    batch_size, max_length, reconstruction, spill_dir = (
        cfg.batch_size,
        cfg.max_length,
        cfg.reconstruction,
        cfg.spill_dir,
    )
    if not saes:
        raise ValueError("no SAEs given; pass {hook: SAE} (e.g. load_saes(...)).")
    hooks = model.validate_hooks(list(saes))
    n_forget = len(forget_texts)
    texts = forget_texts + retain_texts
    width = {h: int(saes[h].cfg.d_sae) for h in hooks}
    if spill_dir is not None and not Path(spill_dir).is_dir():
        raise FileNotFoundError(f"spill_dir={str(spill_dir)!r} is not a folder; create it or pass None.")
    sides = {h: (LatentSums.zeros(width[h]), LatentSums.zeros(width[h])) for h in hooks}
    recon: dict[str, ReconstructionSums] = {}
    spills: dict[str, CodeSpill] = {}
    tokens_per_text = torch.zeros(len(texts), dtype=torch.long)
    inputs = capture_inputs(model, saes, texts, max_length)

    with tempfile.TemporaryDirectory(prefix="sae-unlearn-selection-", dir=spill_dir) as tmp:
        try:
            # the one pass: per-latent sums on both sides, reconstruction sums, sparse codes to disk
            for batch in iter_activations(
                model,
                texts,
                hooks,
                batch_size,
                max_length=inputs.max_length,
                bos=inputs.bos,
                progress="selection" if progress else False,
            ):
                tokens_per_text += torch.bincount(batch.seq_index, minlength=len(texts))
                is_forget = batch.seq_index < n_forget
                for i, h in enumerate(hooks):
                    sae, x = saes[h], batch.activations[h]
                    if h not in recon:  # first batch: refuse a wrong SAE before the remaining batches run
                        check_sae_matches(sae, h, int(x.shape[-1]), model_name)
                        recon[h] = ReconstructionSums(int(x.shape[-1]), width[h])
                    # encoded a block of tokens at a time: a batch's dense codes at 16k latents are
                    # hundreds of MB, several times over inside the encode
                    rows = max(1, ENCODE_BLOCK_BYTES // (4 * width[h]))
                    for s in range(0, x.shape[0], rows):
                        z, xs = sae_encode(sae, x[s : s + rows], h)
                        if reconstruction:
                            recon[h].add(xs, z, sae.decode(z))
                        row, latent = z.nonzero(as_tuple=True)
                        value = z[row, latent].cpu()
                        row, latent = row.cpu(), latent.cpu()
                        if h not in spills:
                            spills[h] = CodeSpill(Path(tmp) / f"codes-{i}.bin", width[h], z.dtype)
                        spills[h].add(batch.seq_index[s : s + rows], row, latent, value)
                        f = is_forget[s : s + rows][row]
                        n_f = int(is_forget[s : s + rows].sum())
                        sides[h][0].add_codes(n_f, latent[f], value[f])
                        sides[h][1].add_codes(int(z.shape[0]) - n_f, latent[~f], value[~f])
                        del z, xs
            selections, skipped = select_per_hook(sides, cfg.n_latents, cfg.scorer, cfg.threshold, candidates)
            # each text's evidence per SAE: max over its tokens of the relevant latents' sum, from the spill
            evidence = {
                h: spills[h].text_evidence(selections[h].relevant, len(texts)) for h in hooks if h not in skipped
            }
        finally:
            for spill in spills.values():
                spill.finish()
    present = tokens_per_text > 0  # texts with at least one token after BOS
    is_forget_text = torch.arange(len(texts)) < n_forget
    pairs = {h: (ev[present & is_forget_text], ev[present & ~is_forget_text]) for h, ev in evidence.items()}
    stats = {h: r.stats() for h, r in recon.items()} if reconstruction else None
    return result_from_evidence(pairs, selections, cfg.layer_rule, candidates, stats, skipped)
