"""SAEs "trained" here, in closed form, on activations prepared one way, with metadata saying so.

:func:`pca_sae` builds a standard sae-lens SAE that reconstructs the span of the top principal
directions of the activations it is given: latents in ``+u`` / ``-u`` pairs (so ReLU codes
decode to the projection), ``b_dec`` the activations' mean. Fitted on one distribution, it explains
most of its variance and much less of a shifted or rescaled one, as a trained SAE does. Its
encoder also has a random component along every direction the training activations never vary in
(``leak``): gradient descent never moves an encoder there, so a trained SAE keeps what its
initialisation put there, and an input off its training distribution along those directions gives
wrong codes.
"""

from __future__ import annotations

import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata


def pca_sae(
    acts: torch.Tensor,
    rank: int,
    hook: str,
    leak: float = 1.0,
    seed: int = 0,
    normalize_activations: str = "none",
    **metadata,
) -> StandardSAE:
    """A ``2 * rank``-latent SAE reconstructing the top ``rank`` principal directions of ``acts``
    (``[n, d_in]``), its metadata ``hook_name=hook`` plus ``metadata``."""
    x = acts.double()
    mean = x.mean(0)
    var, vecs = torch.linalg.eigh((x - mean).T @ (x - mean))  # ascending
    u = vecs[:, -rank:].flip(-1).T  # [rank, d_in], the top principal directions
    w_dec = torch.cat([u, -u])
    flat = vecs[:, var < 1e-9 * var[-1]]  # the directions the activations never vary in
    null = flat @ flat.T
    g = torch.Generator().manual_seed(seed)
    w_enc = w_dec.T + leak * null @ torch.randn(x.shape[1], 2 * rank, generator=g, dtype=torch.float64)
    cfg = StandardSAEConfig(
        d_in=int(x.shape[1]),
        d_sae=2 * rank,
        normalize_activations=normalize_activations,
        metadata=SAEMetadata(hook_name=hook, **metadata),
    )
    sae = StandardSAE(cfg)
    state = {"W_enc": w_enc, "W_dec": w_dec, "b_enc": torch.zeros(2 * rank), "b_dec": mean}
    sae.load_state_dict({k: v.float() for k, v in state.items()})
    return sae


def with_metadata(sae: StandardSAE, **changes) -> StandardSAE:
    """A copy of ``sae`` (same weights) whose metadata has ``changes`` (``None`` removes a key)."""
    meta = {**sae.cfg.metadata.to_dict(), **changes}
    meta = {k: v for k, v in meta.items() if v is not None}
    cfg = StandardSAEConfig(
        d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae,
        normalize_activations=sae.cfg.normalize_activations,
        apply_b_dec_to_input=sae.cfg.apply_b_dec_to_input,
        metadata=SAEMetadata(**meta),
    )
    out = StandardSAE(cfg)
    out.load_state_dict(sae.state_dict())
    return out
