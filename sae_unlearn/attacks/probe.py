"""A linear probe that reads a forgotten fact from hidden activations.

The probe is a *tuned lens* (Belrose et al. 2023, "Eliciting Latent Predictions from
Transformers with the Tuned Lens"): per layer, an affine map ``h ↦ h + A h + b`` trained so that
the model's own final norm and unembedding, applied to the mapped residual stream, predict the
next answer token. It is trained on retain facts only. On a forget fact it scores each candidate
answer (the true one and the perturbed wrong ones) by the mean log-probability of its tokens and
picks the best: choosing the forgotten true answer above the retain oracle's rate means the
layer's activations still encode it, whatever the model's output says.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import Tensor

from sae_unlearn.attacks.base import AttackContext, AttackResult, LayeredAttack, Score, register_attack
from sae_unlearn.attacks.readout import answer_positions
from sae_unlearn.data.splits import QAPair
from sae_unlearn.evaluation.tofu_metrics import candidate_answers
from sae_unlearn.models.hooks import resid_post
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import DictConfig, frozen_parameters, seeded


@dataclass
class ProbeResult:
    """Accuracy of picking the true answer among its candidates, per layer, on the test facts."""

    per_layer: dict[int, float]
    """Layer → test (forget) accuracy."""
    train_per_layer: dict[int, float]
    """Layer → the same accuracy on the training (retain) facts: how well the probe reads known facts."""
    chance: float
    """Expected accuracy of a random pick (mean of 1 / candidates per question)."""

    @property
    def best_layer(self) -> int:
        return max(self.per_layer, key=self.per_layer.__getitem__)

    @property
    def accuracy(self) -> float:
        """The attack's strength: the best layer's test accuracy."""
        return max(self.per_layer.values())


def lens_logprobs(model: HookedModel, h: Tensor, a: Tensor | None = None, b: Tensor | None = None) -> Tensor:
    """Final norm + unembedding applied to ``h + h @ a + b`` (the plain logit lens without ``a``, ``b``)."""
    bridge = model.bridge
    dtype = next(model.hf_model.parameters()).dtype
    mapped = h if a is None or b is None else h + h @ a + b
    mapped = mapped.to(model.device, dtype)
    return torch.log_softmax(bridge.unembed(bridge.ln_final(mapped)).float(), -1)


def _candidate_accuracy(scores: Tensor, sizes: Sequence[int]) -> float:
    correct, pos = 0, 0
    for n in sizes:
        correct += int(scores[pos : pos + n].argmax() == 0)
        pos += n
    return correct / len(sizes)


@dataclass
class ProbeConfig(DictConfig):
    """The tuned-lens probe's training."""

    steps: int = 300
    """AdamW steps per layer."""
    lr: float = 1e-3
    """AdamW learning rate on the map ``A`` (starts at 0, the plain logit lens) and ``b``."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    batch_tokens: int = 512
    """Answer positions per step (a seeded random subset when there are more)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1 or self.lr <= 0 or self.batch_tokens < 1 or self.weight_decay < 0:
            raise ValueError(
                f"steps={self.steps} and batch_tokens={self.batch_tokens} must be >= 1, lr={self.lr} > 0 and "
                f"weight_decay={self.weight_decay} >= 0."
            )


def truth_probe(
    model: HookedModel,
    train_items: Sequence[QAPair],
    test_items: Sequence[QAPair],
    config: ProbeConfig | None = None,
    *,
    batch_size: int = 64,
    seed: int = 0,
) -> ProbeResult:
    """Fit a tuned-lens probe per layer on ``train_items``; candidate-choice accuracy on ``test_items``.

    Args:
        model: the model whose activations are probed (not modified).
        train_items: facts the probe learns to read (the retain set).
        test_items: facts it is asked about (the forget set); items need ``perturbed_answers``.
        config: the probe's training (:class:`ProbeConfig`: AdamW steps, learning rate, weight
            decay, answer positions per step).
        batch_size: texts per forward pass; seed: the probe's initial order of positions.
    """
    config = config or ProbeConfig()
    steps, lr, weight_decay, batch_tokens = config.steps, config.lr, config.weight_decay, config.batch_tokens
    if not train_items or not test_items:
        raise ValueError("the probe needs non-empty train (retain) and test (forget) items.")
    hooks = [resid_post(layer) for layer in range(model.n_layers)]
    tr_p, tr_a, tr_sizes = candidate_answers(train_items)
    te_p, te_a, te_sizes = candidate_answers(test_items)
    tr_c = answer_positions(model, tr_p, tr_a, hooks, batch_size)
    te_c = answer_positions(model, te_p, te_a, hooks, batch_size)
    # The lens learns the true answers: each training item's first candidate, already captured.
    first = torch.isin(tr_c.seq, torch.tensor([0, *accumulate(tr_sizes)][:-1]))
    train_acts, train_target = {h: tr_c.acts[h][first] for h in hooks}, tr_c.target[first]
    d = model.d_model
    per_layer: dict[int, float] = {}
    train_per_layer: dict[int, float] = {}
    for layer, h in enumerate(hooks):
        # the model's weights stay frozen: only the map is trained (their gradients would cost a third
        # of each step and be left on the model)
        with seeded(seed), torch.enable_grad(), frozen_parameters(model.hf_model):
            a = torch.zeros(d, d, requires_grad=True)
            b = torch.zeros(d, requires_grad=True)
            opt = torch.optim.AdamW([a, b], lr=lr, weight_decay=weight_decay)
            gen = torch.Generator().manual_seed(seed)
            n = train_target.numel()
            for _ in range(steps):
                idx = torch.randperm(n, generator=gen)[:batch_tokens] if n > batch_tokens else slice(None)
                lp = lens_logprobs(model, train_acts[h][idx], a, b)
                loss = torch.nn.functional.nll_loss(lp, train_target[idx].to(lp.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            for tok, sizes, out in ((tr_c, tr_sizes, train_per_layer), (te_c, te_sizes, per_layer)):
                lp = lens_logprobs(model, tok.acts[h], a, b).cpu()
                tok_lp = lp.gather(-1, tok.target[:, None]).squeeze(-1)
                n_seq = int(tok.seq.max()) + 1
                seq_lp = torch.zeros(n_seq).index_add_(0, tok.seq, tok_lp)
                seq_n = torch.zeros(n_seq).index_add_(0, tok.seq, torch.ones_like(tok_lp))
                out[layer] = _candidate_accuracy(seq_lp / seq_n, sizes)
    chance = sum(1 / n for n in te_sizes) / len(te_sizes)
    return ProbeResult(per_layer=per_layer, train_per_layer=train_per_layer, chance=chance)


@register_attack
class ProbeAttack(LayeredAttack):
    """A tuned lens per layer trained on retain facts, asked to pick the true forget answer among
    its perturbed wrong ones (needs facts with ``perturbed_answers``)."""

    name = "probe"
    title = "probe"
    Config = ProbeConfig
    order = 40

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict:
        """The probe's held-out accuracy at its best layer."""
        return {"probe_accuracy": result.details["accuracy"] if result else None}

    config: ProbeConfig

    def applies(self, model, data) -> bool:  # noqa: ARG002
        return any(q.perturbed_answers for q in data.split.retain) and any(
            q.perturbed_answers for q in data.split.forget
        )

    def run(self, model, data, context: AttackContext) -> AttackResult:
        t0 = time.perf_counter()
        train = [q for q in data.split.retain if q.perturbed_answers]
        test = [q for q in data.split.forget if q.perturbed_answers]
        probe = truth_probe(model, train, test, self.config, batch_size=context.batch_size, seed=context.seed)
        scores = {f"layer {layer}": Score(v, len(test)) for layer, v in probe.per_layer.items()}
        details = {
            "accuracy": probe.accuracy,
            "best_layer": probe.best_layer,
            "per_layer": probe.per_layer,
            "train_per_layer": probe.train_per_layer,
            "chance": probe.chance,
            "n_train": len(train),
            "n_test": len(test),
        }
        return AttackResult(scores, details, time.perf_counter() - t0)
