"""Hook-based activation capture: any set of hook points in one forward pass per batch.

For each batch of texts, one forward pass runs with a capturing hook on every requested hook
point; as soon as the last requested activation has been seen the pass is stopped (nothing
deeper than the deepest requested site is computed). Texts are right-padded, so with causal
attention the activations of real tokens equal those of the unpadded text; padding positions
(and, by default, BOS) are then masked out and the rest flattened to one row per token.

:func:`iter_activations` streams :class:`ActivationBatch` es with bounded memory;
:func:`capture_activations` collects them into an :class:`~sae_unlearn.capture.store.ActivationStore`,
in memory or as safetensors shards on disk (reused and resumed when the same capture is asked
for again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from sae_unlearn.atomic import cache_fill_lock
from sae_unlearn.capture.store import ActivationStore, ShardWriter
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import DictConfig, as_text_list, stable_hash

logger = logging.getLogger(__name__)


class _StopForward(Exception):
    """Raised inside the last needed hook to end the forward pass early."""


@dataclass
class ActivationBatch:
    """Activations of the real (non-padding) tokens of one batch, one row per token."""

    activations: dict[str, Float[Tensor, "n_tokens ..."]]
    """Per hook name: ``(n_tokens, *act_shape)`` (``(n_tokens, d_model)`` for residual hooks)."""
    token_ids: Int[Tensor, " n_tokens"]
    """The token at each row."""
    seq_index: Int[Tensor, " n_tokens"]
    """Index of the text (in the whole input list) each row comes from."""
    position: Int[Tensor, " n_tokens"]
    """Position of the row's token within its text (0 = BOS)."""

    @property
    def n_tokens(self) -> int:
        return int(self.token_ids.shape[0])


def forward_to_hooks(
    model: HookedModel,
    input_ids: Int[Tensor, "batch pos"],
    hooks: Sequence[str],
    detach: bool = True,
) -> dict[str, Float[Tensor, "batch ..."]]:
    """One forward pass over ``input_ids`` returning the activations at ``hooks``.

    The pass stops as soon as every requested hook has fired, so layers deeper than the
    deepest requested hook are not computed. With ``detach=False`` the activations keep their
    autograd graph (the unlearning losses backpropagate through them).
    """
    hooks = model.validate_hooks(list(hooks))
    wanted = set(hooks)
    captured: dict[str, Tensor] = {}

    def make_hook(name: str):
        def hook_fn(tensor: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens hook signature
            if name not in captured:
                captured[name] = tensor.detach() if detach else tensor
            if len(captured) == len(wanted):
                raise _StopForward
            return tensor

        return hook_fn

    with model.bridge.hooks(fwd_hooks=[(h, make_hook(h)) for h in wanted]):
        try:
            model.hf_model(input_ids=input_ids.to(model.device), use_cache=False)
        except _StopForward:
            pass
    missing = wanted - set(captured)
    if missing:
        raise RuntimeError(f"hooks {sorted(missing)} did not fire during the forward pass.")
    return captured


@torch.no_grad()
def run_and_capture(
    model: HookedModel,
    input_ids: Int[Tensor, "batch pos"],
    hooks: Sequence[str],
) -> dict[str, Float[Tensor, "batch ..."]]:
    """:func:`forward_to_hooks` without gradients; values equal ``bridge.run_with_cache``'s."""
    return forward_to_hooks(model, input_ids, hooks, detach=True)


def _token_rows(acts: Tensor, mask: Tensor, name: str) -> Float[Tensor, "n_tokens ..."]:
    if acts.dim() < 2 or tuple(acts.shape[:2]) != tuple(mask.shape):
        raise ValueError(
            f"hook {name!r} gives shape {tuple(acts.shape)}, not (batch, pos, ...) = {tuple(mask.shape)}+; "
            "capture supports per-token activations (residual, MLP, attention outputs), not attention patterns."
        )
    return acts[mask]


@dataclass
class CaptureConfig(DictConfig):
    """How texts are run for a capture: texts per forward pass, which tokens are kept, length, BOS."""

    batch_size: int = 128
    """Texts per forward pass."""
    drop_bos: bool = True
    """Mask the BOS position (padding is always masked)."""
    max_length: int | None = None
    """Truncate texts to this many tokens (``None``: a longer text than the model's context raises)."""
    bos: bool | None = None
    """``None``: tokenize as the tokenizer does; ``True``/``False``: BOS first or not, whatever the
    tokenizer does (an SAE's ``prepend_bos``; see :meth:`HookedModel.tokenize`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1.")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length={self.max_length} must be >= 1, or None for the full texts.")

    @classmethod
    def of(cls, config: CaptureConfig | int | None, settings: Mapping[str, Any]) -> CaptureConfig:
        """``config`` (or the batch size as the capture functions' fourth argument) updated by
        keyword ``settings`` (``batch_size=``, ``max_length=``, ``bos=``, ``drop_bos=``); an
        unknown keyword raises naming the closest one."""
        fields = dict(settings)
        if isinstance(config, int) and not isinstance(config, bool):
            if "batch_size" in fields:
                raise TypeError(f"batch_size given twice ({config} and batch_size={fields['batch_size']}).")
            fields["batch_size"], config = config, None
        if config is not None and not isinstance(config, CaptureConfig):
            raise TypeError(f"{config!r}: pass a CaptureConfig or the batch size (an int).")
        return (config or cls()).replaced(fields, "the capture")


def iter_activations(
    model: HookedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | str,
    config: CaptureConfig | int | None = None,
    *,
    device: torch.device | str = "cpu",
    start_batch: int = 0,
    progress: bool | str = True,
    **settings: Any,
) -> Iterator[ActivationBatch]:
    """Stream per-token activations at ``hooks`` for ``texts``, one forward pass per batch.

    Args:
        model: the hooked model.
        texts: the texts (each gets BOS when the tokenizer adds it).
        hooks: TransformerLens hook names (``blocks.{l}.hook_resid_post`` …).
        config: how the texts are run (:class:`CaptureConfig`), or the batch size; its fields may
            also be given by keyword: ``batch_size`` (texts per forward pass, default 128),
            ``drop_bos``, ``max_length``, ``bos``.
        device: where yielded activations live.
        start_batch: skip the first batches (resuming a capture).
        progress: show a progress bar (a string: shown, with that label).
    """
    cfg = CaptureConfig.of(config, settings)
    batch_size, drop_bos, max_length, bos = cfg.batch_size, cfg.drop_bos, cfg.max_length, cfg.bos
    desc = progress if isinstance(progress, str) else "capturing"
    texts = as_text_list(texts)
    if isinstance(hooks, str):
        hooks = [hooks]
    hooks = model.validate_hooks(list(hooks))
    if len(texts) == 0:
        raise ValueError("no texts given to capture activations from.")
    n_batches = (len(texts) + batch_size - 1) // batch_size
    bos_id = model.tokenizer.bos_token_id
    for b in tqdm(range(start_batch, n_batches), desc=desc, disable=not progress, initial=start_batch, total=n_batches):
        lo = b * batch_size
        batch = model.tokenize(list(texts[lo : lo + batch_size]), max_length=max_length, bos=bos)
        mask = batch.attention_mask.bool()
        if drop_bos and bos_id is not None:
            mask &= ~((batch.input_ids == bos_id) & (torch.arange(mask.shape[1]) == 0))
        raw = run_and_capture(model, batch.input_ids, hooks)
        pos = torch.arange(mask.shape[1]).expand_as(mask)
        seq = (torch.arange(mask.shape[0]) + lo)[:, None].expand_as(mask)
        yield ActivationBatch(
            activations={h: _token_rows(raw[h].to(device), mask.to(raw[h].device).to(device), h) for h in hooks},
            token_ids=batch.input_ids[mask],
            seq_index=seq[mask],
            position=pos[mask],
        )


def capture_activations(
    model: HookedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | str,
    config: CaptureConfig | int | None = None,
    *,
    cache_dir: str | Path | None = None,
    shard_tokens: int = 65_536,
    progress: bool = True,
    **settings: Any,
) -> ActivationStore:
    """Capture activations at ``hooks`` for every real token of ``texts``.

    Without ``cache_dir`` everything is kept in memory. With it, activations are written as
    safetensors shards of about ``shard_tokens`` rows under a folder keyed by the model, texts,
    hooks and options: asking again returns the cached store without running the model, and
    an interrupted capture resumes after its last complete shard.

    ``texts`` must be a list (a single string raises ``TypeError``); a text longer than the
    model's context raises ``ValueError`` unless ``max_length`` truncates. ``config`` and the
    keyword ``settings`` (``batch_size``, ``drop_bos``, ``max_length``, ``bos``) as for
    :func:`iter_activations`.
    """
    cfg = CaptureConfig.of(config, settings)
    batch_size, drop_bos, max_length, bos = cfg.batch_size, cfg.drop_bos, cfg.max_length, cfg.bos
    texts = as_text_list(texts)
    if isinstance(hooks, str):
        hooks = [hooks]
    hooks = model.validate_hooks(list(hooks))
    if cache_dir is None:
        batches = list(iter_activations(model, texts, hooks, cfg, progress=progress))
        return ActivationStore.from_batches(batches, hooks)
    key = stable_hash(
        {
            "model": model.source,
            "weights": _weights_fingerprint(model),
            "texts": stable_hash(list(texts), 32),
            "hooks": hooks,
            "batch_size": batch_size,
            "drop_bos": drop_bos,
            "max_length": max_length,
            **({} if bos is None else {"bos": bos}),  # (absent by default: earlier caches keep their keys)
        }
    )
    folder = Path(cache_dir) / f"capture-{key}"
    with cache_fill_lock(folder, "an activation capture"):  # one writer; a second process waits, then reads it
        writer = ShardWriter(folder, hooks, shard_tokens=shard_tokens, meta={"key": key, "n_texts": len(texts)})
        if not writer.complete:
            for batch in iter_activations(model, texts, hooks, cfg, start_batch=writer.next_batch, progress=progress):
                writer.add(batch)
            writer.finish()
    return ActivationStore.from_disk(folder)


def _weights_fingerprint(model: HookedModel) -> str:
    """Fingerprint of the current weights (float64 sums), so an edited model misses the cache."""
    with torch.no_grad():
        return stable_hash([float(p.double().sum()) for p in model.hf_model.parameters()])
