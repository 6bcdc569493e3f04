"""Interventions as hook factories applied inside context managers that always restore the model.

:func:`spliced` replaces the activation at each hook by its SAE reconstruction;
:func:`ablated` replaces it by zeros. Both go through the TransformerBridge's ``hooks()``
context, which removes the hooks on exit, also when the block raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.inputs import sae_reconstruct


def reconstruct_hook(sae: SAE, site: str | None = None) -> Callable[[Tensor, object], Tensor]:
    """A forward hook that returns the SAE's reconstruction of the activation at ``site`` (default:
    the SAE's ``hook_name``), its input prepared as the SAE was trained on it
    (:func:`~sae_unlearn.saes.inputs.sae_reconstruct`)."""

    def hook_fn(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
        return sae_reconstruct(sae, act, site)

    return hook_fn


def zero_hook(act: Tensor, hook: object) -> Tensor:  # noqa: ARG001
    """A forward hook that zero-ablates the activation."""
    return torch.zeros_like(act)


@contextlib.contextmanager
def spliced(model: HookedModel, saes: Mapping[str, SAE]) -> Iterator[HookedModel]:
    """Run the model with each hook's activation replaced by its SAE reconstruction."""
    hooks = model.validate_hooks(list(saes))
    with model.bridge.hooks(fwd_hooks=[(h, reconstruct_hook(saes[h], h)) for h in hooks]):
        yield model


@contextlib.contextmanager
def ablated(model: HookedModel, hooks: Sequence[str]) -> Iterator[HookedModel]:
    """Run the model with the activations at ``hooks`` set to zero."""
    hooks = model.validate_hooks(list(hooks))
    with model.bridge.hooks(fwd_hooks=[(h, zero_hook) for h in hooks]):
        yield model
