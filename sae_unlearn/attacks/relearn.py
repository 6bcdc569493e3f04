"""Benign relearning (Hu et al. 2024, "Unlearning or Obfuscating? Jogging the Memory of
Unlearned LLMs via Benign Relearning"; Deeb & Roger 2024).

Fine-tune the unlearned model for a few steps on a small set of text *related* to the forget
set that does not state the evaluated facts (other facts about the same people), and measure how
much of the evaluated knowledge returns after each step count. Knowledge that was only hidden
comes back quickly; knowledge that was removed does not come back faster than in the retain
oracle fine-tuned on the same text.

One run (:func:`relearn_sweep`) fine-tunes either every weight (AdamW) or a LoRA adapter on every
linear layer of the blocks (peft; the unlearned weights frozen). The attack
(:class:`RelearnAttack`) runs a grid of learning rates, seeds and both kinds, and reports the
worst case (the most recovered) at each step count, keeping every curve. The model's weights and
modules are restored afterwards, also on error.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from tqdm.auto import tqdm

from sae_unlearn.attacks.base import Attack, AttackContext, AttackResult, Score, register_attack
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.models.training import tokenize_examples, weighted_lm_loss
from sae_unlearn.utils import DictConfig, distinct_parameters, preserved_parameters, seeded, seeded_generator


def _check_steps(steps: tuple[int, ...]) -> tuple[int, ...]:
    steps = tuple(sorted(set(steps)))
    if not steps or steps[0] < 0:
        raise ValueError(f"steps={steps}: give non-negative step counts, e.g. (0, 10, 50).")
    return steps


@dataclass
class RelearnConfig(DictConfig):
    """One relearning run."""

    steps: tuple[int, ...] = (0, 10, 50)
    """Step counts at which the evaluated facts are measured (cumulative; 0 = before fine-tuning)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    batch_size: int = 8
    """Relearning texts per step."""
    seed: int = 0
    """Seed of the batch order (and of the LoRA initialisation)."""
    mode: Literal["full", "lora"] = "full"
    """``"full"``: every weight trains; ``"lora"``: a LoRA adapter on every linear layer of the blocks."""
    lora_rank: int = 8
    """LoRA rank (at most the narrowest adapted layer's width)."""
    lora_alpha: float = 16.0
    """LoRA scale numerator (the update is scaled by ``lora_alpha / lora_rank``)."""

    def __post_init__(self) -> None:
        self.steps = tuple(self.steps) if isinstance(self.steps, list | tuple) else self.steps
        super().__post_init__()
        self.steps = _check_steps(self.steps)
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0 (the attacker's learning rate), e.g. 1e-3.")
        if self.batch_size < 1 or self.lora_rank < 1 or self.lora_alpha <= 0:
            raise ValueError(
                f"batch_size={self.batch_size}, lora_rank={self.lora_rank} and lora_alpha={self.lora_alpha} "
                "must be positive."
            )


def lora_targets(model: HookedModel) -> dict[str, torch.nn.Module]:
    """The linear layers of the transformer blocks (HF module name → module), found by type, not
    by name: ``nn.Linear`` and GPT-2's ``Conv1D``, except the unembedding."""
    from transformers.pytorch_utils import Conv1D

    out_emb = model.hf_model.get_output_embeddings()
    skip = {id(out_emb), id(getattr(out_emb, "_original_component", out_emb))}
    return {
        name: mod
        for name, mod in model.hf_model.named_modules()
        if isinstance(mod, torch.nn.Linear | Conv1D) and id(mod) not in skip
    }


def _layer_width(mod: torch.nn.Module) -> int:
    w = mod.weight
    assert isinstance(w, torch.Tensor)
    return int(min(w.shape))


def check_lora_rank(model: HookedModel, rank: int) -> None:
    """``ValueError`` unless ``rank`` fits every adapted layer (a rank above a layer's width adds nothing)."""
    targets = lora_targets(model)
    if not targets:
        raise ValueError(f"{model.source}: no linear layers found to put a LoRA adapter on.")
    narrowest = min(_layer_width(m) for m in targets.values())
    if rank > narrowest:
        raise ValueError(
            f"lora_rank={rank} is larger than the narrowest adapted layer's width ({narrowest}) of {model.source}; "
            f"choose lora_rank <= {narrowest}."
        )


@contextlib.contextmanager
def lora_adapter(model: HookedModel, rank: int, alpha: float, seed: int) -> Iterator[list[torch.nn.Parameter]]:
    """Inside the block every block linear layer carries a fresh LoRA adapter (peft's
    ``inject_adapter_in_model``) and the adapters' parameters are yielded; on exit the module tree
    is put back exactly as it was.

    The tree is restored from a snapshot of every parent's children rather than with peft's
    ``unload``: the TransformerLens bridge registers its wrappers under two names each (e.g.
    ``layers.0.attn`` and ``layers.0._original_component.self_attn``), and ``unload``, walking the
    names, replaces the wrapper instead of the wrapped layer.
    """
    from peft import LoraConfig, inject_adapter_in_model
    from transformers.pytorch_utils import Conv1D

    check_lora_rank(model, rank)
    targets = lora_targets(model)
    fan_in_fan_out = any(isinstance(m, Conv1D) for m in targets.values())
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft types it int; any positive scale works
        lora_dropout=0.0,
        target_modules=list(targets),
        fan_in_fan_out=fan_in_fan_out,
    )
    tree = [(parent, dict(parent._modules)) for parent in model.hf_model.modules()]
    had_config = "peft_config" in model.hf_model.__dict__
    old_config = model.hf_model.__dict__.get("peft_config")
    try:
        with seeded(seed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            inject_adapter_in_model(config, model.hf_model)
        yield [p for n, p in model.hf_model.named_parameters() if "lora_" in n]
    finally:
        for parent, children in tree:
            parent._modules.clear()
            parent._modules.update(children)
        if had_config:  # peft records its config on the model: put back what was there
            model.hf_model.__dict__["peft_config"] = old_config
        else:
            model.hf_model.__dict__.pop("peft_config", None)


def relearn_sweep(
    model: HookedModel,
    texts: Sequence[str],
    evaluate: Callable[[HookedModel], float],
    config: RelearnConfig | None = None,
    progress: bool = False,
) -> dict[int, float]:
    """Fine-tune on ``texts`` and return ``{steps: evaluate(model)}`` for every step count.

    ``model`` is restored to its weights (and modules) on entry before this returns, also on error.
    """
    config = config or RelearnConfig()
    if len(texts) == 0:
        raise ValueError("no relearning texts given; pass text related to the forget set.")
    data = tokenize_examples(model.tokenizer, [("", t) for t in texts])
    gen = seeded_generator(config.seed)
    order: list[int] = []
    out: dict[int, float] = {}
    with contextlib.ExitStack() as stack:
        params = stack.enter_context(preserved_parameters(model.hf_named_parameters()))
        if config.mode == "lora":
            for p in params.values():
                p.requires_grad_(False)
            trained = stack.enter_context(lora_adapter(model, config.lora_rank, config.lora_alpha, config.seed))
        else:
            trained = list(distinct_parameters(params).values())
        for p in trained:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(trained, lr=config.lr, weight_decay=0.0)
        done = 0
        bar = tqdm(total=config.steps[-1], desc=f"relearning ({config.mode}, lr {config.lr:g})", disable=not progress)
        for target in config.steps:
            while done < target:
                if len(order) < config.batch_size:
                    order += torch.randperm(len(texts), generator=gen).tolist()
                idx, order = order[: config.batch_size], order[config.batch_size :]
                ids = data.input_ids[idx]
                keep = int((data.loss_weight[idx] > 0).any(0).nonzero().max()) + 2
                ids, w = ids[:, :keep].to(model.device), data.loss_weight[idx, :keep].to(model.device)
                loss = weighted_lm_loss(model.logits(ids).float(), ids, w)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                bar.update(1)
            out[target] = float(evaluate(model))
        bar.close()
    return out


@dataclass
class RelearnAttackConfig(DictConfig):
    """The relearning attack: a grid of runs; the worst case (most recovered) is what counts."""

    steps: tuple[int, ...] = (0, 10, 50)
    """Step counts measured (cumulative)."""
    lrs: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    """Learning rates (a decade apart)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the batch order and the LoRA initialisation."""
    modes: tuple[Literal["full", "lora"], ...] = ("full", "lora")
    """Full fine-tuning and/or LoRA."""
    batch_size: int = 8
    lora_rank: int = 8
    lora_alpha: float = 16.0

    def __post_init__(self) -> None:
        for name in ("steps", "lrs", "seeds", "modes"):
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        super().__post_init__()
        self.steps = _check_steps(self.steps)
        bad = [lr for lr in self.lrs if lr <= 0]
        if not self.lrs or bad:
            raise ValueError(f"lrs={self.lrs}: every learning rate must be > 0, e.g. (1e-4, 1e-3, 1e-2).")
        if not self.seeds or not self.modes:
            raise ValueError(f"seeds={self.seeds} and modes={self.modes} must not be empty.")
        self.runs()  # each run's own checks, now rather than after minutes of attacking

    def runs(self) -> list[RelearnConfig]:
        """Every run of the grid."""
        return [
            RelearnConfig(self.steps, lr, self.batch_size, seed, mode, self.lora_rank, self.lora_alpha)
            for mode in self.modes
            for lr in self.lrs
            for seed in self.seeds
        ]


def _label(run: RelearnConfig) -> str:
    return f"{run.mode} lr={run.lr:g} seed={run.seed}"


@register_attack
class RelearnAttack(Attack):
    """Benign relearning over a grid of learning rates, seeds, full fine-tuning and LoRA."""

    name = "relearn"
    title = "relearn"
    Config = RelearnAttackConfig
    order = 10

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict:
        """The worst case over the grid: at the largest step count, and per step count."""
        worst = dict(result.details["worst"]) if result else {}
        return {"relearn_forget_accuracy": worst[max(worst, key=int)] if worst else None, "relearn": worst}

    config: RelearnAttackConfig

    def check(self, model: HookedModel) -> None:
        """Refuse a grid that cannot run on ``model`` (a LoRA rank above a layer's width)."""
        if "lora" in self.config.modes:
            check_lora_rank(model, self.config.lora_rank)

    def run(self, model, data, context: AttackContext) -> AttackResult:
        from sae_unlearn.evaluation.knowledge import evaluate_knowledge

        t0 = time.perf_counter()
        n = len(data.relearn_eval)
        start: float | None = None

        def evaluate(m: HookedModel) -> float:
            return evaluate_knowledge(m, data.relearn_eval, batch_size=context.batch_size).known_fraction

        curves: dict[str, dict[str, float]] = {}
        runs = self.config.runs()
        steps = [s for s in self.config.steps if s > 0]
        for run in tqdm(runs, desc="relearning grid", disable=not context.progress or len(runs) == 1):
            if not steps:
                break
            curve = relearn_sweep(model, data.relearn_texts, evaluate, replace(run, steps=tuple(steps)))
            curves[_label(run)] = {str(s): v for s, v in curve.items()}
        if 0 in self.config.steps:
            start = evaluate(model)
        worst: dict[str, float] = {} if start is None else {"0": start}
        worst_run: dict[str, str] = {}
        for s in steps:
            label = max(curves, key=lambda k: curves[k][str(s)])
            worst[str(s)], worst_run[str(s)] = curves[label][str(s)], label
        scores = {f"relearn {s} steps": Score(worst[str(s)], n) for s in steps}
        details = {"worst": worst, "worst_run": worst_run, "curves": curves, "n_facts": n}
        return AttackResult(scores, details, time.perf_counter() - t0)
