"""SSPU — SAE-guided Subspace Projection Unlearning (Wang et al. 2025, "Model Unlearning via
Sparse Autoencoder Subspace Guided Projections").

SSPU uses an SAE to decide *where* unlearning may act. From the SAE at the selected layer it
takes the decoder directions of the latents most tied to the forget data (the *relevant*
subspace) and of latents unrelated to it (the *irrelevant* subspace). Training is RMU-like:
forget activations are steered toward ``c · normalise(P_irr u)``, a random direction inside the
irrelevant subspace, so the forgotten content is overwritten by meaningless-but-natural
features (or, with ``target="mean_ablation"``, toward each token's own activation with only its
relevant-subspace component replaced by the retain mean: the forget features erased, the context
kept); retain activations are held at the frozen model's values (weight ``alpha``); a small
regulariser (``reg_weight · ‖ΔW‖²``) keeps the update minimal. Every update of a constrained
matrix is projected on its output side onto the relevant subspace: with ``projection="gradient"``
the gradient (``grad ← P_rel · grad``, so the optimiser's moments stay in the subspace) and the
optimiser's step; with ``projection="update"`` the accumulated change ``ΔW ← P_rel · ΔW`` after
each step. Either way the edit can only write along forget-relevant feature directions:
interpretable, and away from what the retain data uses. :func:`out_of_subspace_residual` checks
this numerically afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.models.weights import as_out_in, weight_layouts, writes_to_residual
from sae_unlearn.subspaces import Subspace, principal_angles
from sae_unlearn.unlearning.base import UnlearningConfig, UnlearningResult, activations_with_grad
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.steering import SteeringMethod
from sae_unlearn.unlearning.trainer import TrainRun
from sae_unlearn.utils import seeded_generator


@dataclass
class SSPUConfig(UnlearningConfig):
    """SSPU's settings: the shared ones plus the switches the paper leaves open."""

    projection: Literal["gradient", "update"] = "gradient"
    """Project each step's gradient, or the accumulated change after each step, onto the relevant subspace."""
    reg_weight: float = 1e-3
    """Weight of the ``‖ΔW‖²`` regulariser that keeps the update small."""
    orthogonal: bool = False
    """Orthogonalise the irrelevant subspace against the relevant one, so that the steering target
    has no component along the directions the update may write (built from independent SAE
    latents, the two spans can nearly intersect: a minimum principal angle under 1° on the zoo
    models)."""
    n_relevant: int | None = None
    """Use only the first ``n_relevant`` relevant basis directions (the most forget-relevant
    latents); ``None``: all the stage selected."""
    n_irrelevant: int | None = None
    """Likewise for the irrelevant subspace."""
    target: Literal["random", "mean_ablation"] = "random"
    """Where forget activations are steered. ``"random"`` (the paper's): a random direction of the
    irrelevant subspace, scaled like RMU's control vector. ``"mean_ablation"``: each forget token's
    own frozen activation with its relevant-subspace component replaced by the retain tokens'
    mean there, ``a - P_rel a + P_rel μ_retain``: only the forget-relevant features are erased
    and the rest of the context is kept, aiming at fluent answers instead of noise."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_relevant", "n_irrelevant"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1 (or None: every selected latent).")
        if self.projection not in ("gradient", "update"):
            raise ValueError(f"projection={self.projection!r}; choose 'gradient' or 'update'.")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight={self.reg_weight} must be >= 0.")
        if self.target not in ("random", "mean_ablation"):
            raise ValueError(f"target={self.target!r}; choose 'random' or 'mean_ablation'.")


def sspu_control(irrelevant: Subspace, coef: float, seed: int) -> Float[Tensor, " d_model"]:
    """``coef · normalise(P_irr u)`` with ``u`` uniform in [0, 1)^d (seeded)."""
    if irrelevant.rank == 0:
        raise ValueError("the irrelevant subspace is empty; select some forget-irrelevant latents.")
    u = torch.rand(irrelevant.basis.shape[0], generator=seeded_generator(seed)).to(irrelevant.basis.dtype)
    v = irrelevant.project(u)
    return coef * v / v.norm()


def mean_ablation_target(
    acts: Float[Tensor, "... d_model"], relevant: Subspace, mean: Float[Tensor, " d_model"]
) -> Float[Tensor, "... d_model"]:
    """``a - P_rel a + P_rel μ``: the activations with their relevant-subspace component replaced by
    that of ``mean`` (mean ablation of the forget-relevant features, everything else kept)."""
    return acts - relevant.project(acts) + relevant.project(mean.to(acts.dtype))


def masked_mean(batches: list[Tensor], masks: list[Tensor]) -> Float[Tensor, " d_model"]:
    """Mean activation over the real tokens of several batches (each ``[batch, pos, d_model]``, of
    its own length, with its ``[batch, pos]`` mask of real tokens)."""
    total = torch.stack([a[m.bool().to(a.device)].sum(0) for a, m in zip(batches, masks, strict=True)]).sum(0)
    count = sum(int(m.sum()) for m in masks)
    return total / max(1, count)


def configured_subspaces(
    relevant: Subspace, irrelevant: Subspace, config: SSPUConfig, where: str = ""
) -> tuple[Subspace, Subspace]:
    """The relevant and irrelevant subspaces as ``config`` shapes them: the first ``n_relevant`` /
    ``n_irrelevant`` basis directions, the irrelevant one orthogonalised against the relevant one
    with ``orthogonal``. An empty result raises (``where`` names the hook in the message)."""
    at = f" at {where}" if where else ""
    if relevant.rank == 0:
        raise ValueError(f"the relevant subspace{at} is empty; select some forget-relevant latents.")
    rel = relevant.truncated(config.n_relevant) if config.n_relevant else relevant
    irr = irrelevant.truncated(config.n_irrelevant) if config.n_irrelevant else irrelevant
    irr = irr.orthogonalised_against(rel) if config.orthogonal else irr
    if irr.rank == 0:
        raise ValueError(
            f"the irrelevant subspace{at} is empty (after orthogonalising it against the relevant one, with "
            "orthogonal=True); select more irrelevant latents or set orthogonal=False."
        )
    return rel, irr


def project_output_side(
    matrix: Float[Tensor, "d_model d_in"], basis: Float[Tensor, "d_model rank"]
) -> Float[Tensor, "d_model d_in"]:
    """``Q Qᵀ M``: project a matrix that writes to the residual stream onto the subspace."""
    q = basis.to(matrix.dtype).to(matrix.device)
    return q @ (q.T @ matrix)


def out_of_subspace_residual(delta: Float[Tensor, "d_model d_in"], relevant: Subspace) -> float:
    """``‖(I - P_rel) ΔW‖_F / ‖ΔW‖_F``: 0 when the whole change lies in the relevant subspace."""
    d = delta.double()
    norm = float(d.norm())
    if norm == 0.0:
        return 0.0
    return float((d - project_output_side(d, relevant.basis.double())).norm()) / norm


class ProjectedUpdates:
    """SSPU's constraint, for a method that says which relevant subspace confines each trained
    matrix (:meth:`relevant_for`): every update is projected on its output side onto that subspace
    (the gradient and the step, or the accumulated change; ``config.projection``), and the
    ``reg_weight · ‖ΔW‖²`` regulariser keeps the change small. Mixed in before the trainer's class."""

    config: SSPUConfig
    has_constraint = True
    _transposed: dict[str, bool]
    """Which trained matrices are stored transposed (set in the method's ``setup``)."""

    def relevant_for(self, name: str) -> Subspace:
        """The relevant subspace the trained matrix ``name`` may change in."""
        raise NotImplementedError

    def _project(self, name: str, m: Tensor) -> Tensor:
        """``Q Qᵀ`` on the output side of ``m``, whatever the parameter's storage layout."""
        t = self._transposed[name]
        return as_out_in(project_output_side(as_out_in(m, t), self.relevant_for(name).basis), t)

    def regulariser(self, run: TrainRun) -> Tensor:
        """``reg_weight · Σ ‖W − W₀‖²`` over the trained matrices."""
        total = torch.zeros((), device=run.model.device)
        for n, p in run.params.items():
            total = total + (p - run.initial[n]).pow(2).sum()
        return self.config.reg_weight * total

    def grad_transform(self, name: str, grad: Tensor) -> Tensor:
        # keeps the optimiser's moment estimates inside the subspace as well
        return self._project(name, grad) if self.config.projection == "gradient" else grad

    def constrain(self, name: str, new: Tensor, before: Tensor, initial: Tensor) -> Tensor:
        # Adam rescales coordinates, so a projected gradient alone does not give a projected step:
        # project the step ("gradient") or the accumulated change ("update").
        if self.config.projection == "gradient":
            return before + self._project(name, new - before)
        return initial + self._project(name, new - initial)

    def subspace_residuals(self, run: TrainRun) -> dict[str, float]:
        """Each trained matrix's out-of-subspace residual (:func:`out_of_subspace_residual`)."""
        with torch.no_grad():
            return {
                n: out_of_subspace_residual(as_out_in(p - run.initial[n], self._transposed[n]), self.relevant_for(n))
                for n, p in run.params.items()
            }


@register("sspu")
class SSPU(ProjectedUpdates, SteeringMethod):
    """SSPU with the shared trainer; needs the relevant and irrelevant subspaces."""

    label = "SSPU"
    description = "steering into the SAE-irrelevant subspace, updates inside the SAE-relevant one"
    config_class = SSPUConfig
    config: SSPUConfig

    def __init__(self, relevant: Subspace, irrelevant: Subspace, config: SSPUConfig | None = None):
        super().__init__(config or SSPUConfig())
        if relevant.basis.shape[0] != irrelevant.basis.shape[0]:
            raise ValueError(
                f"the relevant subspace lives in {relevant.basis.shape[0]} dimensions but the irrelevant one in "
                f"{irrelevant.basis.shape[0]}; build both from the same SAE (build_subspaces)."
            )
        self.relevant, self.irrelevant = configured_subspaces(relevant, irrelevant, self.config)

    @classmethod
    def from_stage(cls, stage, settings: dict) -> SSPU:
        """SSPU at the stage's selected hook, with its relevant and irrelevant subspaces."""
        return cls(stage.subspaces.relevant, stage.subspaces.irrelevant, cls.from_settings(settings))  # type: ignore[arg-type]

    def control_vector(self, model: HookedModel, coef: float) -> Float[Tensor, " d_model"]:
        return sspu_control(self.irrelevant, coef, self.config.seed)

    def check(self, model: HookedModel, forget_texts: list[str], retain_texts: list[str]) -> None:
        dim = self.relevant.basis.shape[0]
        if dim != model.d_model:
            raise ValueError(
                f"the subspaces live in {dim} dimensions but the model's residual stream has d_model="
                f"{model.d_model}: they were built from an SAE of another model or site. Build them from an SAE "
                f"fitted on this model's {self.config.hook or 'selected hook'} (d_in={model.d_model})."
            )

    def steering_target(self, run: TrainRun, forget: TokenBatch, forget_index: int) -> Tensor:
        if self.config.target == "mean_ablation":
            return run.state["forget_targets"][forget_index]
        return run.state["control"]

    def setup(self, run: TrainRun) -> None:
        layouts = weight_layouts(run.model)
        self._transposed = {n: layouts.get(n, False) for n in run.params}
        dim = self.relevant.basis.shape[0]
        for n, p in run.params.items():
            if not writes_to_residual(p.shape, self._transposed[n], dim):
                raise ValueError(
                    f"{n} has shape {tuple(p.shape)}; SSPU constrains matrices that write to the residual stream "
                    f"(output width d_model={dim}), e.g. the MLP or attention output matrix (writer_weight)."
                )
        super().setup(run)
        if self.config.target == "mean_ablation":
            mean = masked_mean(run.state["frozen"], [b.attention_mask for b in run.retain_batches])
            run.state["forget_targets"] = [
                mean_ablation_target(activations_with_grad(run.model, b, self.config.hook), self.relevant, mean)
                for b in run.forget_batches
            ]

    def relevant_for(self, name: str) -> Subspace:
        return self.relevant

    def step_loss(
        self, run: TrainRun, forget: TokenBatch, forget_index: int, retain: TokenBatch, retain_index: int
    ) -> dict[str, Tensor]:
        terms = super().step_loss(run, forget, forget_index, retain, retain_index)
        if self.config.reg_weight > 0:  # keeps the update small
            terms["regulariser"] = self.regulariser(run)
            terms["loss"] = terms["loss"] + terms["regulariser"]
        return terms

    def finish(self, run: TrainRun, result: UnlearningResult) -> None:
        super().finish(run, result)
        residuals = self.subspace_residuals(run)
        with torch.no_grad():
            total = torch.cat([(p - run.initial[n]).flatten() for n, p in run.params.items()]).norm()
        angles = principal_angles(self.relevant, self.irrelevant)
        d = self.relevant.basis.shape[0]
        result.extra = {
            "relevant_rank": self.relevant.rank,
            "irrelevant_rank": self.irrelevant.rank,
            "relevant_share": self.relevant.share_of(d),
            "irrelevant_share": self.irrelevant.share_of(d),
            "min_principal_angle_deg": float(angles.min()) if angles.numel() else None,
            "out_of_subspace_residual": max(residuals.values()),
            "out_of_subspace_residual_per_param": residuals,
            "update_norm": float(total),
            "target": self.config.target,
        }
