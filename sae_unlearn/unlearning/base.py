"""The interface every unlearning method implements, and the pieces methods share.

A method (:class:`UnlearningMethod`) takes a model, forget and retain texts and its config, edits
the model in place and returns an :class:`UnlearningResult`. Gradient methods (RMU, SSPU, gradient
ascent, NPO, …) subclass :class:`~sae_unlearn.unlearning.trainer.GradientMethod` and are trained by
the one trainer in :mod:`sae_unlearn.unlearning.trainer`. Every config subclasses
:class:`TrainConfig`, whose field defaults are the toolkit's one set of defaults (the demo, the
benchmarks, the recipes and the widgets start from them); settings a person types go through
:meth:`~sae_unlearn.utils.DictConfig.from_settings`, which rejects unknown keys with the close match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.capture.capture import forward_to_hooks
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.models.weights import writer_weight
from sae_unlearn.utils import DictConfig, as_text_list, seeded_generator

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig(DictConfig):
    """What every gradient method shares: where, what, how long, how fast (same budget for all)."""

    hook: str = ""
    """The selected layer's hook: where steering methods act, and what places the default edit."""
    params: list[str] | None = None
    """HF parameter names to update; default: the MLP output matrices of the hook's layer and the two before it."""
    steps: int = 250
    """Optimiser steps."""
    lr: float = 5e-3
    """AdamW learning rate of the updated matrices."""
    batch_size: int = 16
    """Forget texts and retain texts per step (each)."""
    guard_every: int = 25
    """Check retain quality every this many steps (0 = never)."""
    guard_tolerance: float = 0.5
    """Stop and restore the best weights when retain next-token loss rises by more than this (nats)."""
    seed: int = 0
    """Seed of the data order (and of a steering method's control vector)."""

    def __post_init__(self) -> None:
        if isinstance(self.params, str):
            raise TypeError(f"params={self.params!r} is one string; pass a list, e.g. params=[{self.params!r}].")
        super().__post_init__()
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0.")
        if self.guard_tolerance <= 0:
            raise ValueError(f"guard_tolerance={self.guard_tolerance} must be > 0.")
        if self.guard_every < 0:
            raise ValueError(f"guard_every={self.guard_every} must be >= 0 (0 = no guard).")


@dataclass
class UnlearningConfig(TrainConfig):
    """The activation-steering methods' settings (RMU; SSPU adds its own): the shared ones plus the
    steering target and the retain weight."""

    alpha: float = 10.0
    """Weight of the retain loss (MSE to the frozen model's activations)."""
    steering_coef: float | None = None
    """Norm of the control vector; ``None``: ``steering_scale`` × mean forget activation norm at the hook."""
    steering_scale: float = 2.0
    """Used when ``steering_coef`` is ``None`` (RMU uses 6.5 on zephyr-7b; norms differ per model)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha < 0:
            raise ValueError(f"alpha={self.alpha} (the retain loss weight) must be >= 0.")
        if self.steering_scale <= 0:
            raise ValueError(f"steering_scale={self.steering_scale} must be > 0.")
        if self.steering_coef is not None and self.steering_coef <= 0:
            raise ValueError(f"steering_coef={self.steering_coef} must be > 0 (or None: scaled to the layer).")


@dataclass
class UnlearningResult:
    """What a run did."""

    method: str
    config: dict
    history: list[dict] = field(default_factory=list)
    """Per logged step: losses (and guard checks)."""
    params: list[str] = field(default_factory=list)
    steering_coef: float = 0.0
    """Norm of the control vector (steering methods; 0 for the others)."""
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
    return [writer_weight(model, l, "mlp").name for l in edit_layers(layer)]


def edit_layers(layer: int) -> list[int]:
    """The blocks the default edit spans when it ends at ``layer``: it and the ``EDIT_DEPTH - 1`` before it."""
    return list(range(max(0, layer - EDIT_DEPTH + 1), layer + 1))


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
        ce = -model.next_token_logprobs(b.input_ids).flatten()
        m = b.attention_mask[:, 1:].flatten().bool()
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


class UnlearningMethod:
    """The interface every unlearning method implements.

    ``name`` is its registry name (set by ``@register``), ``config_class`` its settings (a
    :class:`TrainConfig` subclass for gradient methods), ``description`` one line for menus (after
    the label: ``"SSPU: <description>"``).
    """

    name: str = ""
    config_class: type[DictConfig] = TrainConfig
    description: str = ""
    label: str = ""
    """How tables name it (``"SSPU"``, ``"NPO"``); default: the name upper-cased."""
    changes_weights: bool = True
    """``False`` for weight-free methods (SAE interventions): they install a hook and train nothing."""
    reasoning: bool = False
    """``True`` for methods that need a model which reasons under a trigger (R²MU): they refuse any other."""
    needs_refusal: bool = False
    """``True`` for methods that need a model which can already refuse ("I don't know"; UniErase's token
    only calls a refusal the model can write): a zoo model never trained to refuse is refused."""

    def __init__(self, config: DictConfig | None = None):
        if config is not None and not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}; "
                f"build it with {self.config_class.__name__}(...) or {type(self).__name__}.from_settings(dict)."
            )
        self.config = config if config is not None else self.config_class()

    @classmethod
    def from_settings(cls, settings: dict) -> DictConfig:
        """The method's config from typed settings; an unknown key fails with the close match."""
        return cls.config_class.from_settings(settings, what=f"method {cls.name!r}")

    @classmethod
    def from_stage(cls, stage, settings: dict) -> UnlearningMethod:
        """Build the method from the pipeline's SAE stage (selection, subspaces, SAEs) and settings.

        Methods that need nothing from the stage (RMU, gradient ascent, …) ignore it; SSPU takes
        its subspaces, SAE clamping the SAE and latents. Unknown settings fail with the close match.
        """
        return cls(cls.from_settings(settings))

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
