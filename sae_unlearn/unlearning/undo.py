"""Distillation after unlearning — UNDO (Lee et al. 2025, "Distillation Robustifies Unlearning",
arXiv 2506.06278), and a variant that perturbs only the SAE-relevant subspace.

Unlearning methods like RMU leave the forgotten knowledge in the weights, hidden behind a small
change that a few relearning steps undo. UNDO makes the hiding permanent by rebuilding the
weights: (1) unlearn (the *teacher*), (2) *shrink and perturb* a copy of the unlearned weights,
``θ ← (1 − α) θ + α θ_init`` with ``θ_init`` a fresh initialisation of the same architecture,
and (3) distil the teacher's output distribution (KL on retain text) into the perturbed copy
until the retain behaviour is back. Knowledge the teacher only suppressed is damaged by the
noise and never taught back, since the teacher does not show it.

``perturb="global"`` is UNDO: every weight is perturbed and every weight distils.
``perturb="subspace"`` is this toolkit's variant: only the component of the edited matrices
that lies in SSPU's relevant subspace (what writes along the forget-relevant SAE directions) is
shrunk and perturbed, ``W ← W − α P W + α P W_init``, and only those matrices distil — the
question being whether a targeted perturbation needs far less distillation than global noise.
With ``teacher="sspu_layers"`` each edited matrix is perturbed inside its own layer's subspace.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM

from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.models.weights import as_out_in, weight_layouts
from sae_unlearn.subspaces import Subspace
from sae_unlearn.unlearning.base import UnlearningMethod, UnlearningResult, make_batches
from sae_unlearn.unlearning.compute import count_token_passes
from sae_unlearn.unlearning.registry import get_method, register
from sae_unlearn.unlearning.sspu import SSPUConfig, project_output_side
from sae_unlearn.unlearning.sspu_layers import SSPULayers
from sae_unlearn.utils import DictConfig, check_forget_retain, distinct_parameters, seeded, seeded_generator


@dataclass
class DistillConfig(DictConfig):
    """Distillation of a teacher's distribution into a student on retain text."""

    steps: int = 400
    """Most optimiser steps."""
    lr: float = 1e-3
    batch_size: int = 16
    tolerance: float = 0.05
    """Stop when the mean per-token KL(teacher ‖ student) on held-out retain batches is at or below this (nats)."""
    check_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1 or self.batch_size < 1 or self.check_every < 1:
            raise ValueError(
                f"steps={self.steps}, batch_size={self.batch_size} and check_every={self.check_every} must be >= 1."
            )
        if self.lr <= 0 or self.tolerance <= 0:
            raise ValueError(f"lr={self.lr} and tolerance={self.tolerance} must be > 0.")


def _kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of KL(teacher ‖ student)."""
    t = F.log_softmax(teacher_logits.float(), -1)
    s = F.log_softmax(student_logits.float(), -1)
    kl = (t.exp() * (t - s)).sum(-1)
    m = mask.to(kl.dtype)
    return (kl * m).sum() / m.sum().clamp_min(1)


@torch.no_grad()
def retain_kl(teacher: HookedModel, student: HookedModel, batches: Sequence[TokenBatch]) -> float:
    """Mean per-token KL(teacher ‖ student) over ``batches``."""
    total, n = 0.0, 0
    for b in batches:
        mask = b.attention_mask.to(student.device)
        kl = _kl(teacher.logits(b.input_ids, b.attention_mask), student.logits(b.input_ids, b.attention_mask), mask)
        total += float(kl) * int(mask.sum())
        n += int(mask.sum())
    return total / max(1, n)


def distill(
    student: HookedModel,
    teacher: HookedModel,
    texts: Sequence[str],
    params: dict[str, torch.nn.Parameter],
    config: DistillConfig | None = None,
    progress: bool = False,
) -> dict:
    """Train ``params`` of ``student`` to match ``teacher``'s next-token distribution on ``texts``
    (KL(teacher ‖ student) per real token) until the held-out KL reaches ``config.tolerance``.

    Returns the steps taken and the KL curve. ``texts`` must be non-empty: distillation without
    retain text would teach the student nothing. A bfloat16 or float16 student is trained through
    float32 master copies of ``params``, cast into it after every step.
    """
    config = config or DistillConfig()
    if len(texts) == 0:
        raise ValueError("distillation needs retain text (the teacher's behaviour to copy); got none.")
    if not params:
        raise ValueError("no parameters to distil into; pass the student's parameters.")
    params = distinct_parameters(params)
    batches = make_batches(student, list(texts), config.batch_size, config.seed)
    held = batches[: max(1, min(2, len(batches) // 4))]
    train_batches = batches[len(held) :] or batches
    flags = {n: p.requires_grad for n, p in student.hf_model.named_parameters()}
    for p in student.hf_model.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    # float32 masters of low-precision weights (as the trainer keeps): in bfloat16 a step below half a
    # unit in the last place (lr 1e-3 on a norm weight near 1 is a quarter of one) rounds away every time
    master = {n: p if p.dtype == torch.float32 else p.detach().float() for n, p in params.items()}
    low = [(p, master[n]) for n, p in params.items() if master[n] is not p]
    opt = torch.optim.AdamW(list(master.values()), lr=config.lr, weight_decay=0.0)
    gen = seeded_generator(config.seed + 1)
    curve = {0: retain_kl(teacher, student, held)}
    steps = 0
    try:
        bar = tqdm(range(config.steps), desc="distilling", disable=not progress)
        for step in bar:
            if curve[max(curve)] <= config.tolerance:
                break
            b = train_batches[int(torch.randint(len(train_batches), (1,), generator=gen))]
            with torch.no_grad():
                t_logits = teacher.logits(b.input_ids, b.attention_mask)
            loss = _kl(t_logits, student.logits(b.input_ids, b.attention_mask), b.attention_mask.to(student.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p, m in low:
                m.grad, p.grad = (None if p.grad is None else p.grad.float()), None
            opt.step()
            with torch.no_grad():
                for p, m in low:
                    p.copy_(m)
            steps = step + 1
            if steps % config.check_every == 0 or steps == config.steps:
                curve[steps] = retain_kl(teacher, student, held)
                bar.set_postfix(kl=f"{curve[steps]:.3g}")
    finally:
        for n, p in student.hf_model.named_parameters():
            p.requires_grad_(flags[n])
            p.grad = None
    return {"steps": steps, "kl_curve": {str(k): v for k, v in curve.items()}, "final_kl": curve[max(curve)]}


def fresh_initialisation(model: HookedModel, seed: int) -> dict[str, torch.Tensor]:
    """The weights of a newly initialised model of the same architecture (HF names), seeded."""
    with seeded(seed):
        fresh = AutoModelForCausalLM.from_config(model.hf_model.config)
    state = fresh.state_dict()
    return {n: state[n].to(p.device, p.dtype) for n, p in model.hf_named_parameters().items() if n in state}


@dataclass
class UndoConfig(SSPUConfig):
    """UNDO's settings: the teacher's (every SSPU/RMU setting applies to it) plus the perturbation
    and the distillation."""

    teacher: Literal["rmu", "sspu", "sspu_layers"] = "rmu"
    """The unlearning method whose result is perturbed and distilled (``sspu_layers`` at its own
    defaults for the layers and writers)."""
    perturb: Literal["global", "subspace"] = "global"
    """``"global"``: every weight (UNDO); ``"subspace"``: the relevant-subspace component of the edited matrices."""
    shrink: float = 0.5
    """α in ``θ ← (1 − α) θ + α θ_init`` (UNDO sweeps 0.1-0.8)."""
    distill_steps: int = 400
    distill_lr: float = 1e-3
    distill_tolerance: float = 0.05
    """Distillation stops when the held-out retain KL to the teacher is at or below this (nats/token)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.shrink <= 1:
            raise ValueError(f"shrink={self.shrink} must be in (0, 1] (α of shrink-and-perturb).")
        DistillConfig(steps=self.distill_steps, lr=self.distill_lr, tolerance=self.distill_tolerance)


_UNDO_ONLY = {f.name for f in fields(UndoConfig)} - {f.name for f in fields(SSPUConfig)}


@register("undo")
class Undo(UnlearningMethod):
    """Unlearn (RMU or SSPU), shrink-and-perturb, distil the unlearned teacher back on retain text."""

    label = "UNDO"
    description = "unlearn, shrink-and-perturb the weights, distil the unlearned model back on retain text"
    config_class = UndoConfig
    config: UndoConfig

    def __init__(self, teacher: UnlearningMethod, relevant: Subspace | None = None, config: UndoConfig | None = None):
        super().__init__(config)
        if self.config.perturb == "subspace" and relevant is None:
            raise ValueError("perturb='subspace' needs the relevant subspace (build the method with from_stage).")
        self.teacher = teacher
        self.relevant = relevant

    @classmethod
    def from_stage(cls, stage, settings: dict) -> Undo:
        config: UndoConfig = cls.from_settings(settings)  # type: ignore[assignment]
        cls_t = get_method(config.teacher)
        own = {f.name for f in fields(cls_t.config_class)}  # type: ignore[arg-type]  # configs are dataclasses
        teacher_settings = {k: v for k, v in config.to_dict().items() if k not in _UNDO_ONLY and k in own}
        teacher = cls_t.from_stage(stage, teacher_settings)
        return cls(teacher, stage.subspaces.relevant, config)

    def apply(
        self,
        model: HookedModel,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        progress: bool = True,
        on_step: Callable[[dict], None] | None = None,
    ) -> UnlearningResult:
        forget_texts, retain_texts = check_forget_retain(forget_texts, retain_texts)
        cfg = self.config
        t0 = time.perf_counter()
        saved = {n: p.detach().clone() for n, p in model.hf_named_parameters().items()}
        try:
            with count_token_passes(model) as passes:
                inner = self.teacher.apply(model, forget_texts, retain_texts, progress=progress, on_step=on_step)
                teacher_model = copy.deepcopy(model)
                teacher_model.hf_model.eval()
                params = self._perturb(model, inner.params)
                info = distill(
                    model,
                    teacher_model,
                    retain_texts,
                    params,
                    DistillConfig(
                        cfg.distill_steps, cfg.distill_lr, cfg.batch_size, cfg.distill_tolerance, seed=cfg.seed
                    ),
                    progress=progress,
                )
            del teacher_model
        except BaseException:
            with torch.no_grad():
                for n, p in model.hf_named_parameters().items():
                    p.copy_(saved[n])
            raise
        result = UnlearningResult(
            method=self.name,
            config=cfg.to_dict(),
            history=inner.history,
            params=list(params),
            steering_coef=inner.steering_coef,
            stopped_early=inner.stopped_early,
            seconds=time.perf_counter() - t0,
            mean_step_seconds=inner.mean_step_seconds,
        )
        result.extra = {
            **inner.extra,
            "teacher": cfg.teacher,
            "perturb": cfg.perturb,
            "shrink": cfg.shrink,
            "perturbed_parameters": len(params),
            "distill_steps": info["steps"],
            "distill_kl_curve": info["kl_curve"],
            "distill_final_kl": info["final_kl"],
            "token_passes": passes.units,
        }
        return result

    @torch.no_grad()
    def _perturb(self, model: HookedModel, edited: list[str]) -> dict[str, torch.nn.Parameter]:
        """Shrink and perturb; return the parameters that distil."""
        cfg = self.config
        init = fresh_initialisation(model, cfg.seed + 7)
        named = model.hf_named_parameters()
        if cfg.perturb == "global":
            # each tensor once: a tied head listed twice would be shrunk twice
            distinct = distinct_parameters(named)
            for n, p in distinct.items():
                if n in init:
                    p.mul_(1 - cfg.shrink).add_(cfg.shrink * init[n])
            return distinct
        assert self.relevant is not None
        layouts = weight_layouts(model)
        # SSPU across layers confines each matrix to its own layer's subspace; the others share one
        teacher = self.teacher
        bases = teacher.subspace_of(model) if isinstance(teacher, SSPULayers) else {n: self.relevant for n in edited}
        out = {}
        for n in edited:
            basis = bases[n].basis
            p, t = named[n], layouts.get(n, False)
            w, w0 = as_out_in(p.data.float(), t), as_out_in(init[n].float(), t)
            new = w - cfg.shrink * project_output_side(w, basis) + cfg.shrink * project_output_side(w0, basis)
            p.copy_(as_out_in(new, t).to(p.dtype))
            out[n] = p
        return out
