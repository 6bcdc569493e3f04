"""Relevant and irrelevant subspaces from SAE decoder directions (SSPU stage 3).

The decoder direction ``W_dec[i]`` of a latent is where that feature writes in the residual
stream. SSPU spans a *relevant* subspace with the forget-relevant latents' directions and an
*irrelevant* one with the forget-irrelevant latents' directions. Each basis comes from a QR
factorisation by modified Gram-Schmidt with re-orthogonalisation in float64, in the latents'
order (most relevant first); a direction whose remainder after projecting out the earlier ones
is below ``tol`` of its norm is dependent and dropped, so the basis is orthonormal and its size
is the numerical rank. Diagnostics: ranks, orthogonality error ``max|QᵀQ - I|``, and the
principal angles between the two subspaces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass
class Subspace:
    """An orthonormal basis of the span of some directions."""

    basis: Float[Tensor, "d_model rank"]
    """Orthonormal columns."""
    kept: Int[Tensor, " rank"]
    """Which input directions contributed a basis vector (the rest were dependent)."""
    n_directions: int
    """How many directions were given."""

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    @property
    def dropped(self) -> int:
        return self.n_directions - self.rank

    def projector(self) -> Float[Tensor, "d_model d_model"]:
        """``P = Q Qᵀ``: orthogonal projection onto the subspace."""
        return self.basis @ self.basis.T

    def project(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """Project vectors onto the subspace (``x Q Qᵀ``) without forming ``P``."""
        q = self.basis.to(x.dtype)
        return (x @ q) @ q.T

    def truncated(self, k: int) -> Subspace:
        """The span of the first ``k`` basis vectors: the subspace of the ``k`` most relevant
        latents that contributed one (the basis is built in the latents' order)."""
        if k < 1:
            raise ValueError(f"k={k} must be >= 1 (the number of basis directions kept).")
        k = min(k, self.rank)
        return Subspace(self.basis[:, :k].clone(), self.kept[:k].clone(), self.n_directions)

    def orthogonalised_against(self, other: Subspace, tol: float = 1e-6) -> Subspace:
        """This subspace with ``other`` projected out, re-orthonormalised: the part of the span
        orthogonal to ``other`` (directions that lay almost inside ``other`` are dropped)."""
        if other.rank == 0:
            return self
        cols = self.basis.double()
        q = other.basis.double()
        rest = cols - q @ (q.T @ cols)
        out = orthonormal_basis(rest.T, tol=max(tol, 1e-4))
        return Subspace(out.basis.to(self.basis.dtype), self.kept[out.kept], self.n_directions)

    def share_of(self, d_model: int) -> float:
        """The subspace's share of the residual stream's width (``rank / d_model``)."""
        return self.rank / d_model

    def orthogonality_error(self) -> float:
        """``max |QᵀQ - I|`` (0 for an exactly orthonormal basis)."""
        q = self.basis.double()
        return float((q.T @ q - torch.eye(q.shape[1], dtype=torch.float64)).abs().max()) if self.rank else 0.0


def orthonormal_basis(directions: Float[Tensor, "n d_model"], tol: float = 1e-6) -> Subspace:
    """Orthonormal basis of the span of ``directions`` (rows), in order, dropping dependent ones."""
    if directions.ndim != 2 or directions.shape[0] == 0:
        raise ValueError(f"need a non-empty (n, d_model) tensor of directions; got shape {tuple(directions.shape)}.")
    a = directions.double()
    d = a.shape[1]
    basis: list[Tensor] = []
    kept: list[int] = []
    for i in range(a.shape[0]):
        v = a[i].clone()
        norm0 = float(v.norm())
        if norm0 == 0.0 or not math.isfinite(norm0):
            continue
        for _ in range(2):  # re-orthogonalise once for stability
            for q in basis:
                v -= (q @ v) * q
        if float(v.norm()) <= tol * norm0 or len(basis) == d:
            continue
        basis.append(v / v.norm())
        kept.append(i)
    q = torch.stack(basis, dim=1) if basis else torch.zeros(d, 0, dtype=torch.float64)
    return Subspace(basis=q.to(directions.dtype), kept=torch.tensor(kept, dtype=torch.long), n_directions=a.shape[0])


def principal_angles(a: Subspace, b: Subspace) -> Float[Tensor, " n_angles"]:
    """Principal angles (degrees, ascending) between two subspaces; empty if either is empty."""
    if a.rank == 0 or b.rank == 0:
        return torch.zeros(0)
    cos = torch.linalg.svdvals(a.basis.double().T @ b.basis.double()).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos)).float().sort().values


@dataclass
class SubspacePair:
    """SSPU's relevant and irrelevant subspaces with their diagnostics."""

    relevant: Subspace
    irrelevant: Subspace

    def diagnostics(self) -> dict:
        angles = principal_angles(self.relevant, self.irrelevant)
        return {
            "relevant_rank": self.relevant.rank,
            "irrelevant_rank": self.irrelevant.rank,
            "relevant_dropped": self.relevant.dropped,
            "irrelevant_dropped": self.irrelevant.dropped,
            "orthogonality_error": max(self.relevant.orthogonality_error(), self.irrelevant.orthogonality_error()),
            "principal_angles_deg": [round(float(x), 4) for x in angles],
            "min_principal_angle_deg": float(angles.min()) if angles.numel() else None,
        }


def build_subspaces(
    w_dec: Float[Tensor, "d_sae d_model"],
    relevant: Int[Tensor, " k_rel"],
    irrelevant: Int[Tensor, " k_irr"],
    tol: float = 1e-6,
) -> SubspacePair:
    """Relevant and irrelevant subspaces from the decoder rows of the selected latents."""
    for name, idx in (("relevant", relevant), ("irrelevant", irrelevant)):
        if idx.numel() and (int(idx.max()) >= w_dec.shape[0] or int(idx.min()) < 0):
            raise IndexError(f"{name} latent index out of range for an SAE with {w_dec.shape[0]} latents.")
    w = w_dec.detach().cpu()
    return SubspacePair(relevant=orthonormal_basis(w[relevant], tol), irrelevant=orthonormal_basis(w[irrelevant], tol))
