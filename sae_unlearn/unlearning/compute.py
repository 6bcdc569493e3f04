"""Compute, counted the way the unlearning literature compares it: token passes.

A forward pass over a token costs one unit; a forward pass whose graph is kept for a backward
pass costs three (the backward pass costs about twice the forward). :func:`count_token_passes`
counts every forward pass of a model's Hugging Face module (real tokens, from the attention
mask when given), so any method is measured the same way without instrumenting it, and
:func:`training_token_passes` gives the same count for training a model from scratch (the retain
oracle), so a method's cost can be stated as a share of retraining.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from sae_unlearn.models.loading import HookedModel


@dataclass
class TokenPasses:
    """Token passes counted so far."""

    forward: int = 0
    """Tokens through forward passes without a graph (one unit each)."""
    forward_backward: int = 0
    """Tokens through forward passes with a graph, i.e. later backpropagated (three units each)."""

    @property
    def units(self) -> int:
        """Forward-equivalent token passes: ``forward + 3 · forward_backward``."""
        return self.forward + 3 * self.forward_backward


@contextlib.contextmanager
def count_token_passes(model: HookedModel) -> Iterator[TokenPasses]:
    """Count the tokens of every forward pass of ``model`` inside the block."""
    counts = TokenPasses()

    def pre_hook(module, args, kwargs) -> None:  # noqa: ARG001 - torch hook signature
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        mask = kwargs.get("attention_mask")
        n = int(mask.sum()) if isinstance(mask, torch.Tensor) else int(ids.numel())
        if torch.is_grad_enabled():
            counts.forward_backward += n
        else:
            counts.forward += n

    handle = model.hf_model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield counts
    finally:
        handle.remove()


def training_token_passes(tokens_per_text: Sequence[int], epochs: int) -> int:
    """Forward-equivalent token passes of training from scratch: every text, every epoch, forward and backward."""
    return 3 * epochs * int(sum(tokens_per_text))
