"""One trainer for every gradient unlearning method.

What all of them share lives here, once: the seeded batches, the float32 master copies of the
trained matrices and their AdamW optimiser, the progress bar, ``on_step``, step timing, the
guard (retain next-token loss checked every ``guard_every`` steps; the run stops and restores
the last weights within tolerance when it rises too far) and the restore of the original
weights on any error, a non-finite loss included. A method (:class:`GradientMethod`) supplies
only what differs:

- :meth:`~GradientMethod.step_loss`: the loss of one step from a forget batch and a retain
  batch (RMU's steering MSE, gradient ascent's negated NLL, NPO's log-sigmoid of the log-ratio
  to the frozen reference, …);
- optionally :meth:`~GradientMethod.setup` (what is computed once before any update: frozen
  activations, the reference model's log-probabilities), :meth:`~GradientMethod.grad_transform`
  and :meth:`~GradientMethod.constrain` (SSPU's subspace projection), and
  :meth:`~GradientMethod.finish` (facts recorded in the result).

A new method is one module with a :class:`GradientMethod` subclass and
``@register("name")`` (:mod:`sae_unlearn.unlearning.registry`): the pipeline, the demo, the
recipes, the widgets and the benchmarks list what the registry holds.

Precision: the model runs in its own dtype; the trained matrices keep float32 master copies on
which the optimiser, the gradient transform and the constraint work, cast into the model after
every step (for a float32 model the same arithmetic as updating the weights in place).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.unlearning.base import (
    TrainConfig,
    UnlearningMethod,
    UnlearningResult,
    default_params,
    make_batches,
    resolve_params,
    retain_lm_loss,
)
from sae_unlearn.unlearning.compute import count_token_passes
from sae_unlearn.utils import check_forget_retain, seeded_generator

logger = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """What a method sees of the run: the model, the trained parameters and the batches."""

    model: HookedModel
    config: TrainConfig
    params: dict[str, torch.nn.Parameter]
    """The trained matrices (clean HF names), in the model."""
    initial: dict[str, Tensor]
    """Their values before training (model dtype)."""
    forget_texts: list[str]
    """The checked forget texts (what :meth:`GradientMethod.forget_batches` partitioned)."""
    forget_batches: list[Any]
    """What :meth:`GradientMethod.forget_batches` built (token batches by default)."""
    retain_batches: list[TokenBatch]
    retain_texts: list[str] = field(default_factory=list)
    """The checked retain texts (what the retain batches partition)."""
    state: dict[str, Any] = field(default_factory=dict)
    """What the method's :meth:`~GradientMethod.setup` precomputed (frozen activations, reference log-probs)."""


class GradientMethod(UnlearningMethod):
    """An unlearning method trained by :func:`train`: it supplies a loss, the trainer the rest."""

    config: TrainConfig
    config_class: type[TrainConfig] = TrainConfig

    def param_names(self, model: HookedModel) -> list[str]:
        """The HF names of the matrices to train: ``config.params``, or by default the MLP output
        matrices of the hook's layer and the two before it (the hook is checked first)."""
        model.validate_hooks([self.config.hook])
        return list(self.config.params or default_params(model, self.config.hook))

    def check(self, model: HookedModel, forget_texts: list[str], retain_texts: list[str]) -> None:
        """Refuse what cannot work, before any work (default: nothing more than the trainer's checks)."""

    def forget_batches(self, model: HookedModel, forget_texts: list[str]) -> list[Any]:
        """The forget batches, a fixed seeded partition (default: token batches of the texts).
        Called before any weight changes, so it may refuse texts it cannot use."""
        return make_batches(model, forget_texts, self.config.batch_size, self.config.seed)

    def setup(self, run: TrainRun) -> None:
        """Compute, before any update, what the loss needs from the frozen model (into ``run.state``)."""

    def step_loss(
        self, run: TrainRun, forget: Any, forget_index: int, retain: TokenBatch, retain_index: int
    ) -> dict[str, Tensor]:
        """The losses of one step: ``"loss"`` (what is minimised), ``"forget_loss"`` and
        ``"retain_loss"`` (logged and shown live), and any other scalar terms to log."""
        raise NotImplementedError

    def grad_transform(self, name: str, grad: Tensor) -> Tensor:
        """Applied to each trained matrix's (float32) gradient before the optimiser step."""
        return grad

    def constrain(self, name: str, new: Tensor, before: Tensor, initial: Tensor) -> Tensor:
        """Applied to each trained matrix after every optimiser step (``before``: its value before
        the step; ``initial``: before training; all float32). Default: no constraint."""
        return new

    has_constraint: bool = False
    """Whether :meth:`constrain` does anything (the trainer skips the copies otherwise)."""

    def finish(self, run: TrainRun, result: UnlearningResult) -> None:
        """Record method-specific facts in ``result`` (e.g. SSPU's out-of-subspace residual)."""

    def apply(
        self,
        model: HookedModel,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        progress: bool = True,
        on_step: Callable[[dict], None] | None = None,
    ) -> UnlearningResult:
        return train(self, model, forget_texts, retain_texts, progress=progress, on_step=on_step)


def _restore(params: dict[str, torch.nn.Parameter], values: dict[str, Tensor]) -> None:
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(values[n])


def train(
    method: GradientMethod,
    model: HookedModel,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> UnlearningResult:
    """Unlearn with a gradient method (see :func:`_train`), counting its compute in token passes
    (``result.extra["token_passes"]``, :mod:`sae_unlearn.unlearning.compute`)."""
    with count_token_passes(model) as passes:
        result = _train(method, model, forget_texts, retain_texts, progress, on_step)
    result.extra = {**result.extra, "token_passes": passes.units}
    return result


def _train(
    method: GradientMethod,
    model: HookedModel,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> UnlearningResult:
    """Unlearn with a gradient method: ``config.steps`` AdamW steps on its loss, in place.

    Only the parameters :meth:`GradientMethod.param_names` names change (``config.params``, by
    default the MLP output matrices of the hook's layer and the two before it,
    :func:`~sae_unlearn.unlearning.base.default_params`). Each step
    draws one forget and one retain batch (seeded). On any error, a non-finite loss included, the
    model is restored to its original weights before the error propagates.
    """
    config = method.config
    forget_texts, retain_texts = check_forget_retain(forget_texts, retain_texts)
    names = method.param_names(model)
    params = resolve_params(model, names)
    method.check(model, forget_texts, retain_texts)
    initial = {n: p.detach().clone() for n, p in params.items()}
    all_params = list(model.hf_model.parameters())
    req = [p.requires_grad for p in all_params]
    run = TrainRun(
        model=model,
        config=config,
        params=params,
        initial=initial,
        forget_texts=forget_texts,
        forget_batches=method.forget_batches(model, forget_texts),
        retain_batches=make_batches(model, retain_texts, config.batch_size, config.seed + 1),
        retain_texts=retain_texts,
    )
    result = UnlearningResult(method=method.name, config=config.to_dict(), params=list(names))
    try:
        with torch.no_grad():
            method.setup(run)
        guard_batches = run.retain_batches[: max(1, min(4, len(run.retain_batches)))]
        start_loss = best_loss = retain_lm_loss(model, guard_batches)
        best_state = {n: p.detach().clone() for n, p in params.items()}
        # float32 masters: bfloat16's 8-bit mantissa would round away Adam's small steps. One AdamW per
        # matrix (Adam is elementwise: the same steps as one optimiser over all of them), stepped one
        # after the other, so a constraint needs one matrix's copy at a time, not the whole set's
        master = {n: p.detach().float().clone().requires_grad_(True) for n, p in params.items()}
        opts = {n: torch.optim.AdamW([w], lr=config.lr, weight_decay=0.0) for n, w in master.items()}
        gen = seeded_generator(config.seed + 2)
        step_times: list[float] = []
        t_start = time.perf_counter()
        for p in all_params:
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        model.hf_model.train(False)
        bar = tqdm(range(config.steps), desc=f"unlearning ({method.name})", disable=not progress)
        for step in bar:
            t0 = time.perf_counter()
            fi = int(torch.randint(len(run.forget_batches), (1,), generator=gen))
            ri = int(torch.randint(len(run.retain_batches), (1,), generator=gen))
            terms = method.step_loss(run, run.forget_batches[fi], fi, run.retain_batches[ri], ri)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                shown = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in terms.items() if k != "loss")
                raise FloatingPointError(
                    f"{method.name}: non-finite loss at step {step} ({shown}); lower lr={config.lr}. "
                    "The model was restored."
                )
            for w in master.values():
                w.grad = None
            loss.backward()
            for n, p in params.items():
                grad = None if p.grad is None else method.grad_transform(n, p.grad.float())
                master[n].grad, p.grad = grad, None
            with torch.no_grad():
                for n, p in params.items():
                    before = master[n].detach().clone() if method.has_constraint else None
                    opts[n].step()
                    master[n].grad = None
                    if before is not None:
                        initial32 = run.initial[n].float()
                        master[n].copy_(method.constrain(n, master[n].detach(), before, initial32))
                        del before, initial32
                    p.copy_(master[n])
            step_times.append(time.perf_counter() - t0)
            row = {"step": step, **{k: float(v.detach()) for k, v in terms.items()}}
            if config.guard_every and ((step + 1) % config.guard_every == 0 or step + 1 == config.steps):
                lm = retain_lm_loss(model, guard_batches)
                row["retain_lm_loss"] = lm
                if lm < best_loss + 1e-9 or lm <= start_loss + config.guard_tolerance:
                    best_loss = min(best_loss, lm)
                    best_state = {n: p.detach().clone() for n, p in params.items()}
                if lm > start_loss + config.guard_tolerance:
                    result.stopped_early = (
                        f"retain next-token loss rose from {start_loss:.3f} to {lm:.3f} at step {step + 1} "
                        f"(tolerance {config.guard_tolerance}); restored the last weights within tolerance. "
                        "Lower lr, or raise the retain weight."
                    )
                    logger.warning("%s: %s", method.name, result.stopped_early)
                    _restore(params, best_state)
                    result.history.append(row)
                    break
            result.history.append(row)
            if on_step is not None:
                on_step(row)
            bar.set_postfix(forget=f"{row['forget_loss']:.3g}", retain=f"{row['retain_loss']:.3g}")
    except BaseException:
        _restore(params, initial)  # never leave a half-updated model behind
        raise
    finally:
        for p, r in zip(all_params, req, strict=True):
            p.requires_grad_(r)
        model.hf_model.eval()
    result.seconds = time.perf_counter() - t_start
    result.mean_step_seconds = sum(step_times[1:]) / (len(step_times) - 1) if len(step_times) > 1 else 0.0
    method.finish(run, result)
    return result
