"""The shared machinery of activation-steering unlearning methods (RMU, SSPU, …).

A method implements :class:`UnlearningMethod`: given a model, forget and retain texts and a
config, it edits the model's weights in place and returns an :class:`UnlearningResult`. The
RMU-style methods share :func:`steering_train`: forget activations at one hook are pushed toward
a control vector, retain activations are held at the frozen model's values, and only the chosen
matrices are updated (a method may transform their gradients, e.g. SSPU's subspace projection).
The loop stops with a clear error on a non-finite loss and restores the best weights when retain
quality collapses (the guard).

Precision: the model runs in its own dtype (float32, bfloat16 or float16); the trained matrices
keep float32 master copies, on which the optimiser (AdamW, so its state is float32 too), the
gradient transform and the constraint work; after every step the masters are cast into the
model. For a float32 model this is the same arithmetic as updating the weights in place.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from sae_unlearn.capture.capture import forward_to_hooks
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.models.weights import writer_weight
from sae_unlearn.utils import DictConfig, as_text_list, check_forget_retain, seeded_generator

logger = logging.getLogger(__name__)


@dataclass
class UnlearningConfig(DictConfig):
    """Settings shared by the activation-steering methods (same budget for every method)."""

    hook: str = ""
    """Where forget activations are steered (SSPU: the selected layer's ``hook_resid_post``)."""
    params: list[str] | None = None
    """HF parameter names to update; default: ``mlp.down_proj`` of the hook's layer and the two before it."""
    steps: int = 150
    """Optimiser steps."""
    lr: float = 1e-3
    """AdamW learning rate of the updated matrices."""
    batch_size: int = 16
    """Forget texts and retain texts per step (each)."""
    alpha: float = 10.0
    """Weight of the retain loss (MSE to the frozen model's activations)."""
    steering_coef: float | None = None
    """Norm of the control vector; ``None``: ``steering_scale`` × mean forget activation norm at the hook."""
    steering_scale: float = 2.0
    """Used when ``steering_coef`` is ``None`` (RMU uses 6.5 on zephyr-7b; norms differ per model)."""
    guard_every: int = 25
    """Check retain quality every this many steps (0 = never)."""
    guard_tolerance: float = 0.5
    """Stop and restore the best weights when retain next-token loss rises by more than this (nats)."""
    seed: int = 0
    """Seed of the control vector and the data order."""

    def __post_init__(self) -> None:
        if isinstance(self.params, str):
            raise TypeError(f"params={self.params!r} is one string; pass a list, e.g. params=[{self.params!r}].")
        super().__post_init__()
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0.")
        if self.alpha < 0:
            raise ValueError(f"alpha={self.alpha} (the retain loss weight) must be >= 0.")
        for name in ("steering_scale", "guard_tolerance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0.")
        if self.steering_coef is not None and self.steering_coef <= 0:
            raise ValueError(f"steering_coef={self.steering_coef} must be > 0 (or None: scaled to the layer).")
        if self.guard_every < 0:
            raise ValueError(f"guard_every={self.guard_every} must be >= 0 (0 = no guard).")


@dataclass
class UnlearningResult:
    """What a run did."""

    method: str
    config: dict
    history: list[dict] = field(default_factory=list)
    """Per logged step: losses (and guard checks)."""
    params: list[str] = field(default_factory=list)
    steering_coef: float = 0.0
    stopped_early: str | None = None
    """Why the guard stopped the run (``None`` if it ran to the end)."""
    seconds: float = 0.0
    mean_step_seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    """Method-specific facts (e.g. SSPU's out-of-subspace residual)."""


EDIT_DEPTH = 3
"""How many blocks the default edit spans: the steered layer's MLP output matrix and the ones
of the ``EDIT_DEPTH - 1`` blocks before it (RMU's recipe: layers l-2..l)."""


def default_params(model: HookedModel, hook: str) -> list[str]:
    """The MLP output matrices (what writes the MLP's output into the residual stream) of the
    hook's layer and the two before it, on any architecture the bridge maps (Llama's
    ``mlp.down_proj``, GPT-2's ``mlp.c_proj``, GPT-NeoX's ``mlp.dense_4h_to_h``, …)."""
    layer = last_writer_layer(hook)
    if layer is None:
        raise ValueError(f"no block writes into {hook!r} before it is read; steer at a later hook or pass params.")
    return [writer_weight(model, l, "mlp").name for l in range(max(0, layer - EDIT_DEPTH + 1), layer + 1)]


def resolve_params(model: HookedModel, names: Sequence[str]) -> dict[str, torch.nn.Parameter]:
    """Look up parameters by clean HF name; unknown names raise listing similar ones."""
    all_params = model.hf_named_parameters()
    out = {}
    for n in names:
        if n not in all_params:
            similar = [k for k in all_params if k.split(".")[-2:] == n.split(".")[-2:]][:6]
            raise KeyError(f"parameter {n!r} not in the model; e.g. {similar or list(all_params)[:6]}.")
        out[n] = all_params[n]
    return out


def activations_with_grad(model: HookedModel, batch: TokenBatch, hook: str) -> Float[Tensor, "batch pos d_model"]:
    """The activation at ``hook`` with its autograd graph (the forward pass stops right after it)."""
    return forward_to_hooks(model, batch.input_ids, [hook], detach=False)[hook]


def masked_mse(
    a: Float[Tensor, "batch pos d"], b: Float[Tensor, "batch pos d"] | Float[Tensor, " d"], mask: Tensor
) -> Float[Tensor, ""]:
    """Mean over real tokens of the per-token mean squared error."""
    per_tok = (a - b).pow(2).mean(-1)
    m = mask.to(per_tok.dtype)
    return (per_tok * m).sum() / m.sum().clamp_min(1)


@torch.no_grad()
def retain_lm_loss(model: HookedModel, batches: Sequence[TokenBatch]) -> float:
    """Mean next-token loss on retain batches (the guard's measure of retain quality)."""
    total, count = 0.0, 0
    for b in batches:
        logits = model.logits(b.input_ids)
        ce = F.cross_entropy(
            logits[:, :-1].flatten(0, 1), b.input_ids[:, 1:].flatten().to(logits.device), reduction="none"
        )
        m = b.attention_mask[:, 1:].flatten().bool().to(ce.device)
        total += float(ce[m].sum())
        count += int(m.sum())
    return total / max(1, count)


def make_batches(model: HookedModel, texts: Sequence[str], batch_size: int, seed: int) -> list[TokenBatch]:
    """A fixed, seeded partition of ``texts`` into tokenized batches."""
    texts = as_text_list(texts)
    if len(texts) == 0:
        raise ValueError("no texts given; the forget and retain sets must not be empty.")
    order = torch.randperm(len(texts), generator=seeded_generator(seed)).tolist()
    return [model.tokenize([texts[i] for i in order[s : s + batch_size]]) for s in range(0, len(texts), batch_size)]


GradTransform = Callable[[str, Tensor], Tensor]


def steering_train(
    model: HookedModel,
    forget_texts: Sequence[str],
    retain_texts: Sequence[str],
    config: UnlearningConfig,
    control: Float[Tensor, " d_model"],
    method: str,
    grad_transform: GradTransform | None = None,
    regulariser: Callable[[dict[str, Tensor]], Tensor] | None = None,
    constrain: Callable[[str, Tensor, Tensor, Tensor], Tensor] | None = None,
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> UnlearningResult:
    """The RMU-style loop: forget activations → ``control``, retain activations → frozen values.

    Args:
        model: edited in place (only ``config.params`` change).
        forget_texts, retain_texts: the data.
        config: shared settings (``config.hook`` must be set).
        control: the control vector forget activations are steered to.
        method: name recorded in the result.
        grad_transform: ``(param_name, grad) -> grad`` applied before each optimiser step.
        regulariser: extra loss on the updated parameters (given ``{name: W - W0}``).
        constrain: ``(name, new, before_step, initial) -> allowed`` applied to each updated
            parameter after every optimiser step (SSPU's subspace constraint).
        on_step: called with each step's log row (for live monitors).
    """
    forget_texts, retain_texts = check_forget_retain(forget_texts, retain_texts)
    model.validate_hooks([config.hook])
    names = config.params or default_params(model, config.hook)
    params = resolve_params(model, names)
    initial = {n: p.detach().clone() for n, p in params.items()}
    all_params = list(model.hf_model.parameters())
    req = [p.requires_grad for p in all_params]
    forget_batches = make_batches(model, forget_texts, config.batch_size, config.seed)
    retain_batches = make_batches(model, retain_texts, config.batch_size, config.seed + 1)
    with torch.no_grad():  # the frozen model's retain activations, computed once before any update
        frozen = [activations_with_grad(model, b, config.hook).detach() for b in retain_batches]
    guard_batches = retain_batches[: max(1, min(4, len(retain_batches)))]
    start_loss = best_loss = retain_lm_loss(model, guard_batches)
    best_state = {n: p.detach().clone() for n, p in params.items()}
    control = control.to(model.device)
    result = UnlearningResult(
        method=method, config=config.to_dict(), params=list(names), steering_coef=float(control.norm())
    )
    # float32 master copies of the trained matrices: the optimiser, the gradient transform and the
    # constraint work on them, and each step's result is cast into the model's dtype (bfloat16's
    # 8-bit mantissa would round away Adam's small steps, and SSPU's projection is float32).
    master = {n: p.detach().float().clone().requires_grad_(True) for n, p in params.items()}
    initial32 = {n: w.detach().clone() for n, w in master.items()}
    opt = torch.optim.AdamW(list(master.values()), lr=config.lr, weight_decay=0.0)
    gen = seeded_generator(config.seed + 2)
    step_times: list[float] = []
    t_start = time.perf_counter()
    try:
        for p in all_params:
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        model.hf_model.train(False)
        bar = tqdm(range(config.steps), desc=f"unlearning ({method})", disable=not progress)
        for step in bar:
            t0 = time.perf_counter()
            fb = forget_batches[int(torch.randint(len(forget_batches), (1,), generator=gen))]
            ri = int(torch.randint(len(retain_batches), (1,), generator=gen))
            rb = retain_batches[ri]
            fa = activations_with_grad(model, fb, config.hook)
            ra = activations_with_grad(model, rb, config.hook)
            forget_loss = masked_mse(fa, control, fb.attention_mask.to(fa.device))
            retain_loss = masked_mse(ra, frozen[ri], rb.attention_mask.to(ra.device))
            loss = forget_loss + config.alpha * retain_loss
            reg = None
            if regulariser is not None:
                reg = regulariser({n: p - initial[n] for n, p in params.items()})
                loss = loss + reg
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{method}: non-finite loss at step {step} (forget {float(forget_loss.detach()):.4g}, retain "
                    f"{float(retain_loss.detach()):.4g}); lower lr={config.lr} or steering_coef. "
                    "The model was restored."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for n, p in params.items():
                grad = None if p.grad is None else p.grad.float()
                if grad is not None and grad_transform is not None:
                    grad = grad_transform(n, grad)
                master[n].grad, p.grad = grad, None
            with torch.no_grad():
                before = {n: w.detach().clone() for n, w in master.items()} if constrain is not None else {}
                opt.step()
                for n, p in params.items():
                    if constrain is not None:
                        master[n].copy_(constrain(n, master[n].detach(), before[n], initial32[n]))
                    p.copy_(master[n])
            step_times.append(time.perf_counter() - t0)
            row = {
                "step": step,
                "loss": float(loss.detach()),
                "forget_loss": float(forget_loss.detach()),
                "retain_loss": float(retain_loss.detach()),
            }
            if reg is not None:
                row["regulariser"] = float(reg.detach())
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
                        "Lower lr or steering, or raise alpha."
                    )
                    logger.warning("%s: %s", method, result.stopped_early)
                    with torch.no_grad():
                        for n, p in params.items():
                            p.copy_(best_state[n])
                    result.history.append(row)
                    break
            result.history.append(row)
            if on_step is not None:
                on_step(row)
            bar.set_postfix(forget=f"{row['forget_loss']:.3g}", retain=f"{row['retain_loss']:.3g}")
    except BaseException:
        with torch.no_grad():  # never leave a half-updated model behind on error
            for n, p in params.items():
                p.copy_(initial[n])
        raise
    finally:
        for p, r in zip(all_params, req, strict=True):
            p.requires_grad_(r)
        model.hf_model.eval()
    result.seconds = time.perf_counter() - t_start
    result.mean_step_seconds = sum(step_times[1:]) / max(1, len(step_times) - 1) if len(step_times) > 1 else 0.0
    return result


def default_steering_coef(model: HookedModel, forget_texts: Sequence[str], config: UnlearningConfig) -> float:
    """``steering_scale`` × mean norm of the forget activations at the hook (or the fixed coefficient)."""
    if config.steering_coef is not None:
        return float(config.steering_coef)
    with torch.no_grad():
        norms = []
        for b in make_batches(model, forget_texts, 64, config.seed)[:4]:
            a = activations_with_grad(model, b, config.hook)
            norms.append(a.norm(dim=-1)[b.attention_mask.bool().to(a.device)])
    coef = config.steering_scale * float(torch.cat(norms).mean())
    if not math.isfinite(coef):
        raise FloatingPointError("mean forget activation norm is not finite; check the model.")
    return coef


class UnlearningMethod:
    """The interface every unlearning method implements (RMU, SSPU, and later baselines)."""

    name: str = ""
    config_class: type[UnlearningConfig] = UnlearningConfig

    def __init__(self, config: UnlearningConfig | None = None):
        self.config = config or self.config_class()

    @classmethod
    def from_stage(cls, stage, settings: dict) -> UnlearningMethod:
        """Build the method from the pipeline's SAE stage (selection, subspaces, SAEs) and settings.

        Methods that need nothing from the stage (RMU, gradient ascent, …) ignore it; SSPU takes
        its subspaces, SAE clamping would take the SAE and latents.
        """
        return cls(cls.config_class.from_dict(settings))

    def apply(
        self,
        model: HookedModel,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        progress: bool = True,
        on_step: Callable[[dict], None] | None = None,
    ) -> UnlearningResult:
        """Unlearn ``forget_texts`` from ``model`` in place, keeping ``retain_texts``.

        Implementations start with :func:`sae_unlearn.utils.check_forget_retain` (lists of
        non-empty texts, no text on both sides) before any work.
        """
        raise NotImplementedError
