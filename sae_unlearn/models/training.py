"""Deterministic, resumable next-token training of a small causal LM (used to build the zoo).

Examples are ``(prefix, completion)`` pairs; the loss on prefix tokens is scaled by
``prompt_loss_weight`` (0 trains on answers only, 1 on the whole text). The data order of
each epoch is drawn from ``(seed, epoch)``, and a checkpoint is written after every epoch,
so an interrupted run resumes at the last finished epoch and ends with the same weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sae_unlearn.atomic import atomic_file
from sae_unlearn.utils import DictConfig, seeded_generator

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "train_checkpoint.pt"


@dataclass
class LMTrainConfig(DictConfig):
    """Optimisation settings for :func:`train_causal_lm`."""

    epochs: int = 60
    """Passes over the examples."""
    batch_size: int = 32
    """Examples per optimiser step."""
    lr: float = 3e-3
    """Peak learning rate (AdamW), reached after warm-up, then cosine decay to 10%."""
    warmup_steps: int = 30
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    prompt_loss_weight: float = 1.0
    """Weight of the loss on prefix tokens relative to completion tokens."""
    seed: int = 0
    """Seed for the data order."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs={self.epochs} and batch_size={self.batch_size} must both be >= 1.")
        if not 0.0 <= self.prompt_loss_weight <= 1.0:
            raise ValueError(f"prompt_loss_weight={self.prompt_loss_weight} must be in [0, 1].")


@dataclass
class TokenizedExamples:
    """Right-padded token ids with a per-token loss weight."""

    input_ids: Int[Tensor, "n pos"]
    loss_weight: Float[Tensor, "n pos"]
    """Weight of predicting token ``t`` (0 for BOS and padding)."""


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[tuple[str, str]],
    prompt_loss_weight: float = 1.0,
) -> TokenizedExamples:
    """Tokenize ``(prefix, completion)`` pairs as ``<s> prefix completion </s>`` (right-padded)."""
    if len(examples) == 0:
        raise ValueError("no training examples given.")
    seqs, weights = [], []
    for prefix, completion in examples:
        ids = tokenizer(prefix + completion)["input_ids"] + [tokenizer.eos_token_id]
        n_prefix = len(tokenizer(prefix)["input_ids"]) if prefix else 1  # BOS alone
        w = [0.0] + [prompt_loss_weight] * (n_prefix - 1) + [1.0] * (len(ids) - n_prefix)
        seqs.append(ids)
        weights.append(w)
    max_len = max(map(len, seqs))
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(seqs), max_len), pad, dtype=torch.long)
    loss_weight = torch.zeros(len(seqs), max_len)
    for i, (s, w) in enumerate(zip(seqs, weights, strict=True)):
        input_ids[i, : len(s)] = torch.tensor(s)
        loss_weight[i, : len(w)] = torch.tensor(w)
    return TokenizedExamples(input_ids=input_ids, loss_weight=loss_weight)


def weighted_lm_loss(
    logits: Float[Tensor, "batch pos d_vocab"], input_ids: Int[Tensor, "batch pos"], weight: Float[Tensor, "batch pos"]
) -> Float[Tensor, ""]:
    """Next-token cross-entropy, each target token weighted by ``weight`` (weighted mean)."""
    ce = F.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten(), reduction="none")
    w = weight[:, 1:].flatten()
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


def _lr_lambda(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def load_checkpoint(path: Path) -> dict:
    """Read a training checkpoint written by :func:`train_causal_lm` without running any code.

    ``torch.load(weights_only=True)`` unpickles only tensors, numbers, strings and containers: a
    file planted in a shared cache (a pickle whose payload would run on load) is refused before
    anything in it runs, with an error naming the file and the fix.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for foreign objects; RuntimeError/EOFError for damage
        raise ValueError(
            f"training checkpoint {path} is not a checkpoint this toolkit wrote (it holds objects other than "
            f"tensors and plain data, or it is damaged: {type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "it was not loaded and nothing in it ran. Delete it to start the build over."
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "epoch", "losses"} <= set(state):
        raise ValueError(f"training checkpoint {path} lacks the fields a checkpoint has; delete it to start over.")
    return state


def train_causal_lm(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[tuple[str, str]],
    config: LMTrainConfig,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on ``examples``; returns the mean loss of every epoch.

    With ``checkpoint_dir`` a checkpoint is written after each epoch and, if one is found
    at start, training resumes from it (same final weights as an uninterrupted run).
    """
    data = tokenize_examples(tokenizer, examples, config.prompt_loss_weight)
    n = data.input_ids.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_lambda(s, config.warmup_steps, total))
    losses: list[float] = []
    start_epoch = 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if ckpt_path is not None and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        if state.get("config") != config.to_dict() or state.get("n_examples") != n:
            raise ValueError(
                f"checkpoint {ckpt_path} was written by a different run (config or data differ); "
                "delete it to start over."
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        losses = state["losses"]
        start_epoch = state["epoch"] + 1
        logger.info("resuming training at epoch %d/%d from %s", start_epoch, config.epochs, ckpt_path)

    device = next(model.parameters()).device
    model.train()
    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc="training", disable=not progress)
    for epoch in range(start_epoch, config.epochs):
        order = torch.randperm(n, generator=seeded_generator(config.seed * 100_003 + epoch))
        epoch_loss = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * config.batch_size : (s + 1) * config.batch_size]
            w = data.loss_weight[idx]
            length = int((w > 0).any(0).nonzero().max()) + 1
            ids = data.input_ids[idx, :length].to(device)
            w = w[:, :length].to(device)
            logits = model(input_ids=ids, use_cache=False).logits
            loss = weighted_lm_loss(logits, ids, w)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite training loss {loss.item()} at epoch {epoch}, step {s}; lower lr."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            epoch_loss += loss.item()
            bar.update(1)
        losses.append(epoch_loss / steps_per_epoch)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
        if ckpt_path is not None:
            with atomic_file(ckpt_path, "wb") as fh:  # a kill leaves the previous epoch's checkpoint whole
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "epoch": epoch,
                        "losses": losses,
                        "config": config.to_dict(),
                        "n_examples": n,
                    },
                    fh,
                )
    bar.close()
    model.eval()
    return losses
