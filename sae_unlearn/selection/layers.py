"""Layer selection: at which layer do SAE latents best separate forget from retain data?

For every layer's SAE, latents are scored (:mod:`sae_unlearn.selection.latents`) and the top-k
forget-relevant ones taken. Each token gets a *forget evidence*, the summed activation of those
latents, and each text the largest evidence among its tokens (a fact about a forget person is
recognisable at its name, not at "lives in"). The layer score is the AUROC of that text evidence
between forget texts and retain texts (0.5 = no separation, 1.0 = every forget text above every
retain text). The chosen layer is the one with the highest score (the earlier layer on a tie);
all layers' scores are kept as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.capture.store import ActivationStore
from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.saes.metrics import encode_batched
from sae_unlearn.selection.latents import LatentSelection, Scorer, latent_stats, select_latents


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

    @property
    def selection(self) -> LatentSelection:
        """The latent selection at the chosen hook."""
        return self.selections[self.hook]


def select_layer_and_latents(
    saes: Mapping[str, SAE],
    store: ActivationStore,
    forget_mask: Bool[Tensor, " n_tokens"],
    k: int = 32,
    scorer: Scorer = "squared_mean_ratio",
    threshold: float | None = None,
) -> SelectionResult:
    """Score every hook's SAE, choose the best-separating layer, select its latents.

    Args:
        saes: one SAE per hook (the hooks must be in ``store``).
        store: captured activations of forget and retain text.
        forget_mask: which rows of ``store`` are forget tokens (the rest are retain).
        k, scorer, threshold: latent selection settings (see :func:`select_latents`).
    """
    if forget_mask.shape[0] != store.n_tokens:
        raise ValueError(f"forget_mask has {forget_mask.shape[0]} entries but the store has {store.n_tokens} rows.")
    if not forget_mask.any() or forget_mask.all():
        raise ValueError("forget_mask must mark some rows as forget and some as retain.")
    seq = store.seq_index
    scores: dict[str, float] = {}
    selections: dict[str, LatentSelection] = {}
    for hook, sae in saes.items():
        z = encode_batched(sae, store[hook])
        sel = select_latents(
            latent_stats(z[forget_mask], z[~forget_mask]), k=k, scorer=scorer, threshold=threshold, hook=hook
        )
        scores[hook] = auroc(*_text_evidence(z[:, sel.relevant].sum(-1), seq, forget_mask))
        selections[hook] = sel
    best = max(scores, key=lambda h: (scores[h], -(hook_layer(h) or 0)))
    return SelectionResult(hook=best, layer=hook_layer(best), layer_scores=scores, selections=selections)
