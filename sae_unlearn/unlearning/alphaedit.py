"""Closed-form, null-space-constrained edits of a linear map (AlphaEdit; Fang et al. 2025,
"AlphaEdit: Null-Space Constrained Knowledge Editing for Language Models").

An MLP output matrix ``W`` (``[d_out, d_in]``) maps keys ``k`` (its inputs) to values ``W k``. To
make new keys ``K₁`` map to ``W K₁ + R`` while keys the model already uses (``K₀``, e.g. every
token of the retain text) keep their values, AlphaEdit restricts the update to the null space of
``K₀``: with ``P`` the projector onto the directions ``K₀`` barely occupies, the least-squares
update is ``Δ = R K₁ᵀ P (K₁ K₁ᵀ P + λ I)⁻¹``, and ``Δ K₀ ≈ 0`` because ``Δ = Δ P``. The null space
of a real covariance is rarely exactly empty of energy: :func:`null_space_projector` keeps the
eigen-directions that together hold at most a small share of ``K₀``'s energy (first-order
preservation; the share is reported, not hidden).

Pure functions on tensors (float64 inside); :mod:`sae_unlearn.unlearning.unierase` uses them.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def null_space_projector(keys: Float[Tensor, "n d_in"], energy: float = 0.01) -> tuple[Float[Tensor, "d_in d_in"], int]:
    """``(P, rank)``: the projector onto the eigen-directions of ``keysᵀ keys`` that together hold at
    most ``energy`` of its trace (the directions the keys barely use), and their number."""
    if not 0 <= energy < 1:
        raise ValueError(f"energy={energy} must be in [0, 1) (a share of the retain keys' energy).")
    if keys.ndim != 2 or keys.shape[0] == 0:
        raise ValueError(f"keys must be a non-empty [n, d_in] matrix, got shape {tuple(keys.shape)}.")
    k = keys.double()
    evals, evecs = torch.linalg.eigh(k.T @ k)  # ascending
    share = evals.clamp_min(0).cumsum(0) / evals.clamp_min(0).sum().clamp_min(1e-300)
    null = evecs[:, share <= energy]
    return null @ null.T, int(null.shape[1])


def alphaedit_update(
    projector: Float[Tensor, "d_in d_in"],
    keys: Float[Tensor, "n d_in"],
    residuals: Float[Tensor, "n d_out"],
    ridge: float = 1.0,
) -> Float[Tensor, "d_out d_in"]:
    """The update ``Δ`` (``[d_out, d_in]``) that maps each key to its residual in the least-squares
    sense, inside the projector's null space: ``Δ = Xᵀ`` with ``(P K Kᵀ + λ I) X = P K Rᵀ`` (keys and
    residuals as columns), so ``Δ = Δ P``. ``λ = ridge ×`` the mean squared norm of the projected
    keys (scale-free: one key alone gets ``Δ k = r / (1 + ridge)``)."""
    if keys.shape[0] != residuals.shape[0]:
        raise ValueError(f"{keys.shape[0]} keys but {residuals.shape[0]} residuals; give one residual per key.")
    if ridge <= 0:
        raise ValueError(f"ridge={ridge} must be > 0.")
    p, k, r = projector.double(), keys.double().T, residuals.double().T  # k: [d_in, n], r: [d_out, n]
    eye = torch.eye(p.shape[0], dtype=torch.float64, device=p.device)
    lam = ridge * float((p @ k).pow(2).sum(0).mean().clamp_min(1e-12))
    x = torch.linalg.solve(p @ k @ k.T + lam * eye, p @ k @ r.T)  # [d_in, d_out]
    return x.T
