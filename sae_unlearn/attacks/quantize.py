"""Weight quantisation before querying (Zhang et al. 2024, "Catastrophic Failure of LLM
Unlearning via Quantization").

Unlearning with a small learning rate moves weights by less than a quantisation step, so
rounding the unlearned weights to a 4-bit grid can land them back on the original model's grid
points and restore the forgotten answers. This module applies symmetric round-to-nearest (RTN)
quantisation — the baseline of GPTQ/AWQ, and what int8/int4 inference computes — to every
linear layer inside the transformer blocks (embeddings and the output head stay in full
precision, as in common int4 deployments), in place and restored on exit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from sae_unlearn.attacks.base import Attack, AttackContext, AttackResult, Score, register_attack
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.models.weights import as_out_in, weight_layouts
from sae_unlearn.utils import DictConfig, preserved_parameters


def quantize_tensor(
    w: Float[Tensor, "d_out d_in"], bits: int, group_size: int | None = None
) -> Float[Tensor, "d_out d_in"]:
    """Symmetric RTN fake-quantisation: per output row (``group_size=None``) or per group of inputs.

    Each group is scaled by ``absmax / (2**(bits-1) - 1)``, rounded to integers in
    ``[-2**(bits-1), 2**(bits-1) - 1]`` and scaled back (the dequantised weights).
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits={bits}: use 2-16 (8 for int8, 4 for 4-bit).")
    d_out, d_in = w.shape
    g = d_in if group_size is None else group_size
    if g < 1 or d_in % g:
        raise ValueError(f"group_size={group_size} must divide the input width {d_in}.")
    qmax = 2 ** (bits - 1) - 1
    x = w.float().reshape(d_out, d_in // g, g)
    scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-12) / qmax
    q = torch.clamp(torch.round(x / scale), -qmax - 1, qmax)
    return (q * scale).reshape(d_out, d_in).to(w.dtype)


def block_weights(model: HookedModel) -> dict[str, torch.nn.Parameter]:
    """The 2-D weight matrices of the transformer blocks, by HF name (embeddings, positional
    embeddings and the output head left out; a head tied to the embeddings is left out with them)."""
    hf = model.hf_model
    skip = {id(m.weight) for m in (hf.get_input_embeddings(), hf.get_output_embeddings()) if m is not None}
    skip |= {id(m.weight) for m in hf.modules() if isinstance(m, torch.nn.Embedding)}
    return {n: p for n, p in model.hf_named_parameters().items() if p.ndim == 2 and id(p) not in skip}


@contextmanager
def quantized(model: HookedModel, bits: int, group_size: int | None = None) -> Iterator[HookedModel]:
    """Inside the block, every block linear layer holds its ``bits``-bit RTN-quantised weights.

    Example: ``with quantized(model, 4, group_size=32): evaluate_knowledge(model, forget)``.
    The original weights are restored on exit, also on error.
    """
    weights = block_weights(model)
    if not weights:
        raise RuntimeError("found no block weight matrices to quantise in the model.")
    layouts = weight_layouts(model)  # GPT-2's Conv1D stores [d_in, d_out]: quantise per output channel all the same
    if group_size is not None:
        widths = {as_out_in(p, layouts[n]).shape[1] for n, p in weights.items()}
        bad = sorted(w for w in widths if w % group_size)
        if bad:
            raise ValueError(f"group_size={group_size} does not divide the input widths {bad}; pick a divisor.")
    with preserved_parameters(weights):
        with torch.no_grad():
            for n, p in weights.items():
                q = quantize_tensor(as_out_in(p, layouts[n]), bits, group_size)
                p.copy_(as_out_in(q, layouts[n]))
        yield model


@dataclass
class QuantizeAttackConfig(DictConfig):
    """Weight widths attacked."""

    bits: tuple[int, ...] = (8, 4)
    """Widths (8: per-channel int8; below 8: grouped)."""
    group_size: int = 32
    """Group size for widths below 8 bits."""

    def __post_init__(self) -> None:
        if isinstance(self.bits, list):
            self.bits = tuple(self.bits)
        super().__post_init__()
        bad = [b for b in self.bits if not 2 <= b <= 8]
        if bad:
            raise ValueError(f"bits={self.bits}: widths must be in [2, 8], got {bad}.")
        if self.group_size < 1:
            raise ValueError(f"group_size={self.group_size} must be >= 1.")


@register_attack
class QuantizeAttack(Attack):
    """int8 / 4-bit round-to-nearest weights, then ask the forget questions."""

    name = "quantization"
    title = "quantised weights"
    Config = QuantizeAttackConfig
    order = 60

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict:
        """Forget accuracy per precision (``{"int8": …, "int4": …}``)."""
        return {"quantization": {k.split()[0]: s.value for k, s in result.scores.items()} if result else {}}

    config: QuantizeAttackConfig

    def check(self, model: HookedModel) -> None:
        if any(b < 8 for b in self.config.bits):
            layouts = weight_layouts(model)
            widths = {as_out_in(p, layouts[n]).shape[1] for n, p in block_weights(model).items()}
            bad = sorted(w for w in widths if w % self.config.group_size)
            if bad:
                raise ValueError(
                    f"group_size={self.config.group_size} does not divide the input widths {bad}; pick a divisor."
                )

    def run(self, model, data, context: AttackContext) -> AttackResult:
        from sae_unlearn.evaluation.knowledge import evaluate_knowledge

        t0 = time.perf_counter()
        scores = {}
        for bits in self.config.bits:
            with quantized(model, bits, None if bits >= 8 else self.config.group_size):
                acc = evaluate_knowledge(model, data.split.forget, batch_size=context.batch_size).known_fraction
            scores[f"int{bits} weights"] = Score(acc, len(data.split.forget))
        return AttackResult(scores, {}, time.perf_counter() - t0)
