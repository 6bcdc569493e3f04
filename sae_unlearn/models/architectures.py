"""The toolkit's one per-architecture table.

For each Hugging Face ``model_type`` the toolkit runs and tests (every stage, in
``tests/integration/test_architectures.py``), :data:`ARCHITECTURES` says how a config of a given
shape is written in that architecture's own keyword names, and what TransformerLens's bridge maps
the MLP output matrix to. Everything that builds a small model of an architecture reads it: the
zoo's trained models (:mod:`sae_unlearn.models.zoo`), a recipe's random twin (``recipe --check``),
and the tests' random models. Hook names and the parameters an edit updates come from the bridge
(:mod:`sae_unlearn.models.weights`), never from this table.

Adding an architecture is one entry here; the tests then run every stage on a small random model of
it, and :func:`sae_unlearn.models.weights.writer_weight` must find the matrix named below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import transformers
from transformers import PretrainedConfig


@dataclass(frozen=True)
class Shape:
    """The size of a model, in the toolkit's names (TransformerLens's: ``d_model``, ``d_mlp``, ...)."""

    d_model: int
    """Residual stream width."""
    n_layers: int
    """Transformer blocks."""
    n_heads: int
    """Attention (query) heads."""
    d_mlp: int
    """MLP hidden width."""
    vocab_size: int
    """Vocabulary size."""
    max_position: int = 256
    """Longest sequence (Gemma-2's sliding window is set to it: a small model sees its whole context)."""
    n_kv_heads: int | None = None
    """Key/value heads (grouped-query attention); ``None``: as many as ``n_heads``."""

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "d_mlp", "vocab_size", "max_position"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}.")
        if self.n_kv_heads is not None and (self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads):
            raise ValueError(f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}.")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


@dataclass(frozen=True)
class Architecture:
    """One row of the table."""

    config_class: str
    """The ``transformers`` config class (``LlamaConfig``)."""
    keywords: Callable[[Shape], dict]
    """The config's keyword arguments for a shape, in the architecture's own names."""
    mlp_out: str
    """The MLP output matrix of layer ``{layer}`` as the bridge maps it (its Hugging Face name)."""
    mlp_out_transposed: bool = False
    """Stored ``[d_in, d_out]`` (GPT-2's ``Conv1D``) rather than ``nn.Linear``'s ``[d_out, d_in]``."""
    grouped_query: bool = True
    """Whether the config takes fewer key/value heads than query heads."""
    layers_key: str = "num_hidden_layers"
    """The config's name for the number of blocks (what a full-size config is cut down by)."""
    note: str = ""
    """What sets it apart, for the README's table."""

    def config(self, shape: Shape, **extra) -> PretrainedConfig:
        """A config of ``shape`` (``extra``: further keyword arguments, e.g. special token ids)."""
        if not self.grouped_query and shape.kv_heads != shape.n_heads:
            raise ValueError(
                f"n_kv_heads={shape.n_kv_heads}: {self.config_class} has no grouped-query attention; leave it None."
            )
        return getattr(transformers, self.config_class)(**self.keywords(shape), **extra)


def _llama_like(s: Shape) -> dict:
    return {
        "vocab_size": s.vocab_size,
        "hidden_size": s.d_model,
        "intermediate_size": s.d_mlp,
        "num_hidden_layers": s.n_layers,
        "num_attention_heads": s.n_heads,
        "num_key_value_heads": s.kv_heads,
        "max_position_embeddings": s.max_position,
    }


#: model_type → how to write its config, and where its MLP output matrix lives.
ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(
        "LlamaConfig", _llama_like, "model.layers.{layer}.mlp.down_proj.weight", note="RMSNorm, RoPE"
    ),
    "qwen2": Architecture(
        "Qwen2Config", _llama_like, "model.layers.{layer}.mlp.down_proj.weight", note="Llama with q/k/v biases"
    ),
    "gemma2": Architecture(
        "Gemma2Config",
        lambda s: _llama_like(s) | {"head_dim": s.d_model // s.n_heads, "sliding_window": s.max_position},
        "model.layers.{layer}.mlp.down_proj.weight",
        note="sandwich norms, logit soft-capping, tied embeddings",
    ),
    "gpt2": Architecture(
        "GPT2Config",
        lambda s: {
            "vocab_size": s.vocab_size,
            "n_embd": s.d_model,
            "n_inner": s.d_mlp,
            "n_layer": s.n_layers,
            "n_head": s.n_heads,
            "n_positions": s.max_position,
        },
        "transformer.h.{layer}.mlp.c_proj.weight",
        mlp_out_transposed=True,
        grouped_query=False,
        layers_key="n_layer",
        note="Conv1D weights (stored transposed), learned positions, tied embeddings",
    ),
    "gpt_neox": Architecture(
        "GPTNeoXConfig",
        lambda s: {k: v for k, v in _llama_like(s).items() if k != "num_key_value_heads"},
        "gpt_neox.layers.{layer}.mlp.dense_4h_to_h.weight",
        grouped_query=False,
        note="parallel attention and MLP, fused QKV",
    ),
}


def architecture(model_type: str) -> Architecture:
    """The table's row for ``model_type``; ``ValueError`` naming the covered ones otherwise."""
    if model_type not in ARCHITECTURES:
        raise ValueError(f"architecture={model_type!r} is not in the table; covered: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[model_type]


def small_config(model_type: str, shape: Shape, **extra) -> PretrainedConfig:
    """A Hugging Face config of ``model_type`` at ``shape`` (random weights come from
    ``AutoModelForCausalLM.from_config``)."""
    return architecture(model_type).config(shape, **extra)


def architectures_table() -> dict:
    """The table as the README shows it (generated by ``make tables``, in the results-table format of
    ``benchmarks/tables.py``): a row added here shows there, and a test fails until it does."""
    rows = [
        [f"`{name}`", f"`{row.config_class}`", f"`{row.mlp_out.format(layer='L')}`", row.note]
        for name, row in ARCHITECTURES.items()
    ]
    return {
        "columns": ["model_type", "config", "MLP output matrix (bridge's `blocks.L.mlp.out`)", "what sets it apart"],
        "align": ["left"] * 4,
        "formats": [None] * 4,
        "rows": rows,
    }
