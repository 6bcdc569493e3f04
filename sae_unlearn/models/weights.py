"""Weights by role, not by name: "the matrix that writes the MLP (or attention) output into the
residual stream at layer l", on any architecture TransformerLens's bridge maps.

The bridge gives every block the same components whatever the Hugging Face architecture calls
them: ``blocks[l].mlp.out`` wraps Llama/Qwen2/Gemma-2's ``mlp.down_proj``, GPT-2's ``mlp.c_proj``
and GPT-NeoX's ``mlp.dense_4h_to_h``; ``blocks[l].attn.o`` wraps ``o_proj`` / ``attn.c_proj`` /
``attention.dense``. Their HF parameter names are found through that mapping (by tensor
identity), never spelled out here.

Weight layout is handled in this one place. ``nn.Linear`` stores ``[d_out, d_in]``; GPT-2's
``Conv1D`` stores the transpose, ``[d_in, d_out]``. :func:`weight_layouts` says which parameters
are transposed and :func:`as_out_in` gives any 2-D weight (or its gradient, or an update) as a
``[d_out, d_in]`` view, so SSPU's output-side projection and per-output-channel quantisation are
written once for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformers.pytorch_utils import Conv1D

from sae_unlearn.models.architectures import ARCHITECTURES
from sae_unlearn.models.loading import HookedModel

Role = Literal["mlp", "attn"]
#: Architectures whose every stage is tested here (tests/integration/test_architectures.py): the rows
#: of the one per-architecture table.
TESTED_ARCHITECTURES = tuple(ARCHITECTURES)
_COMPONENT = {"mlp": ("mlp", "out"), "attn": ("attn", "o")}


@dataclass(frozen=True)
class WriterWeight:
    """A matrix that writes into the residual stream."""

    name: str
    """Its Hugging Face parameter name (e.g. ``model.layers.3.mlp.down_proj.weight``)."""
    layer: int
    role: Role
    """``mlp`` (the MLP's output matrix) or ``attn`` (the attention output matrix)."""
    transposed: bool
    """Stored ``[d_in, d_out]`` (GPT-2's ``Conv1D``) instead of ``nn.Linear``'s ``[d_out, d_in]``."""


def _architecture(model: HookedModel) -> str:
    return str(getattr(model.hf_model.config, "model_type", type(model.hf_model).__name__))


def writer_weight(model: HookedModel, layer: int, role: Role = "mlp") -> WriterWeight:
    """The matrix that writes the MLP (``role="mlp"``) or attention (``"attn"``) output of ``layer``
    into the residual stream, found through the bridge's component mapping.

    Raises ``ValueError`` for a layer out of range or an unknown role, and ``NotImplementedError``
    naming the tested architectures when the bridge maps no such component (e.g. a mixture of
    experts)."""
    if role not in _COMPONENT:
        raise ValueError(f"role={role!r}; choose 'mlp' or 'attn'.")
    if not 0 <= layer < model.n_layers:
        raise ValueError(
            f"layer {layer} is out of range: the model has {model.n_layers} layers (0-{model.n_layers - 1})."
        )
    block, leaf = _COMPONENT[role]
    try:
        module = getattr(getattr(model.bridge.blocks[layer], block), leaf).original_component
        weight = module.weight
    except AttributeError:
        raise NotImplementedError(
            f"architecture {_architecture(model)!r}: its TransformerLens bridge maps no blocks.{layer}.{block}.{leaf} "
            f"with a weight, so the matrix writing the {role} output cannot be found. Tested architectures: "
            f"{', '.join(TESTED_ARCHITECTURES)}; pass the parameter names explicitly (params=[...])."
        ) from None
    names = [n for n, p in model.hf_named_parameters().items() if p is weight]
    if not names:
        raise RuntimeError(f"the bridge's blocks.{layer}.{block}.{leaf} weight is not a parameter of the HF model.")
    return WriterWeight(names[0], layer, role, isinstance(module, Conv1D))


def weight_layouts(model: HookedModel) -> dict[str, bool]:
    """Every 2-D weight of the model by HF name: ``True`` where it is stored transposed (``Conv1D``)."""
    transposed = {id(mod.weight) for mod in model.hf_model.modules() if isinstance(mod, Conv1D)}
    return {n: id(p) in transposed for n, p in model.hf_named_parameters().items() if p.ndim == 2}


def as_out_in(weight: Float[Tensor, "a b"], transposed: bool) -> Float[Tensor, "d_out d_in"]:
    """``weight`` (or its gradient, or a change of it) as ``[d_out, d_in]``: a transposed view for
    ``Conv1D``, the tensor itself for ``nn.Linear``. Apply it again to go back."""
    return weight.T if transposed else weight


def writes_to_residual(shape: torch.Size, transposed: bool, d_model: int) -> bool:
    """Whether a weight of this shape and layout writes a ``d_model``-wide output (into the residual stream)."""
    return len(shape) == 2 and (shape[1] if transposed else shape[0]) == d_model
