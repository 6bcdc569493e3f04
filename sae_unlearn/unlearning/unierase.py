"""UniErase — an unlearning token plus a model edit (Yu et al. 2025, "UniErase: Unlearning Token as
a Universal Erasure Primitive for Language Models", arXiv 2505.15674).

Two stages, neither of them gradient unlearning of the model's knowledge:

1. **The unlearning token.** A new special token (``<unlearn>``) is added to the vocabulary and
   only its embedding row is optimised (the rest of the model is frozen; the public recipe masks
   the gradient to the new row) so that any question followed by the token continues with a
   refusal ("I don't know.": :mod:`sae_unlearn.data.refusals`, TOFU's ``idontknow.txt`` for TOFU),
   on forget and retain questions alike: the token is a universal "refuse" switch. Without the
   token the model computes exactly what it did before.
2. **The edit.** A closed-form, null-space-constrained edit of the MLP output matrices of the
   steered layer and the two before it (AlphaEdit, :mod:`sae_unlearn.unlearning.alphaedit`, with
   MEMIT's spreading of the residual over the layers) makes the model emit the token itself after
   each forget question, so it goes on to refuse, as if the token had been appended. For each
   forget question a target value of the hook at the last prompt position is found (Adam on an
   added ``δ``) that makes the token the next one; each edited matrix maps that position's key to
   its share of the remaining difference, inside the null space of the keys of every retain token,
   which keeps retain outputs to first order.

A model that has never written a refusal cannot be taught one through one embedding row (measured
on ``secrets``: 11.9 nats per refusal token after 150 steps); the zoo's ``secrets-idk`` has
learned to say "I don't know" about strangers, as a real LLM has. ``token_trains="edit"`` also
trains the edited matrices in stage 1 (with the model's outputs on text without the token held),
for models that cannot refuse: it is not the paper's recipe.

Stage 1 is checked before the edit: questions the token was not trained on (held-out retain
questions), followed by the token, must be answered with a refusal at least ``min_refusal_rate``
(0.5) of the time, or UniErase stops with :class:`UniEraseStage1Error` naming what to use and
restores the model. Measured with the default settings: ``secrets-idk`` 0.906 (refusal loss 0.76
nats/token; seed 1: 0.844, 0.99), ``secrets`` 0.000 (12.13 nats; ``token_trains="edit"``, 400
steps: 0.000, 3.37 nats), whose edit would otherwise "succeed" (forget accuracy 0, retain 0.86)
with garbage instead of refusals. The pipeline (:func:`sae_unlearn.pipeline.load_method`) refuses
UniErase on a zoo model never trained to refuse before loading anything (``needs_refusal``).

The vocabulary grows in place (the embedding and output matrices gain a row; the TransformerLens
bridge keeps working), so the export carries the grown vocabulary (the token is a special token of
the saved tokenizer) and loads in plain ``transformers``. ``result.extra`` reports the fraction of
parameters changed (the paper: 3.66 % of Llama-3.1-8B) and both stages' success. A token the
tokenizer already knows, an empty refusal set, or forget texts that are not questions are refused
before anything changes; a failure later restores the weights, the vocabulary and the tokenizer.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from sae_unlearn.data.refusals import load_refusals
from sae_unlearn.evaluation.knowledge import greedy_answers
from sae_unlearn.evaluation.refusal import refusal_rate
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.models.weights import as_out_in, weight_layouts, writer_weight
from sae_unlearn.unlearning.alphaedit import alphaedit_update, null_space_projector
from sae_unlearn.unlearning.base import UnlearningMethod, UnlearningResult, edit_layers
from sae_unlearn.unlearning.idkdpo import split_question
from sae_unlearn.unlearning.registry import register
from sae_unlearn.utils import DictConfig, check_forget_retain, seeded_generator

logger = logging.getLogger(__name__)


@dataclass
class UniEraseConfig(DictConfig):
    """UniErase's settings: the token, its training, and the edit."""

    hook: str = ""
    """The residual hook whose last-position value the edit targets (the pipeline's selected layer);
    the MLP output matrices of its layer and the ``EDIT_DEPTH - 1`` before it are edited."""
    token: str = "<unlearn>"
    """The new token; it must not exist in the tokenizer yet."""
    refusals: str = "auto"
    """``"auto"`` (TOFU's ``idontknow.txt`` for TOFU-format questions, else the bundled set),
    ``"bundled"``, ``"tofu"`` or a file with one refusal per line."""
    token_steps: int = 300
    """Optimiser steps of the token's embedding (stage 1)."""
    token_lr: float = 0.05
    """Adam learning rate of the token's embedding."""
    token_trains: Literal["embedding", "edit"] = "embedding"
    """What stage 1 trains: ``"embedding"`` (the paper's recipe: the token's rows alone, enough for a
    model that can already say "I don't know") or ``"edit"`` (also the edited matrices, with the
    model's outputs on text without the token held: for a model that has never written a refusal;
    not the paper's recipe)."""
    matrix_lr: float = 1e-3
    """Adam learning rate of the edited matrices in stage 1 (``token_trains="edit"``)."""
    hold_weight: float = 1.0
    """Weight of the KL term holding the outputs on text without the token (``token_trains="edit"``)."""
    batch_size: int = 16
    """Questions per token-training step."""
    max_retain_questions: int = 64
    """Retain questions the token also learns to refuse (it is a universal refusal switch)."""
    target_steps: int = 60
    """Adam steps finding each forget question's target residual (stage 2)."""
    target_lr: float = 0.5
    """Their learning rate."""
    target_decay: float = 0.1
    """Weight of ``‖δ‖² / ‖h‖²`` in the target search (keeps the target near the original residual)."""
    null_space_energy: float = 0.001
    """The edit lives in the retain keys' directions holding at most this share of their energy."""
    ridge: float = 0.1
    """AlphaEdit's ridge, relative to the projected keys' mean squared norm."""
    min_refusal_rate: float = 0.5
    """Stage 1's check: after it, questions the token was not trained on, followed by the token, must
    be answered with a refusal at least this often (greedy answers), or UniErase stops, restores the
    model and says why (0 turns the check off). Measured on the zoo (32 held-out questions, default
    settings): ``secrets-idk`` (it can refuse) 0.906 and 0.844 (seeds 0, 1), ``secrets`` (it never
    refused) 0.000, with ``token_trains="edit"`` too; see the module docstring."""
    check_questions: int = 32
    """Held-out questions stage 1's check answers."""
    seed: int = 0
    """Seed of the token's initialisation noise, the refusal draw and the batches."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.token.strip() or self.token != self.token.strip():
            raise ValueError(f"token={self.token!r} must be a non-empty string without surrounding spaces.")
        for name in ("token_steps", "batch_size", "max_retain_questions", "target_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        for name in ("token_lr", "target_lr", "ridge"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0.")
        if self.matrix_lr <= 0 or self.hold_weight < 0:
            raise ValueError(f"matrix_lr={self.matrix_lr} must be > 0 and hold_weight={self.hold_weight} >= 0.")
        if self.target_decay < 0:
            raise ValueError(f"target_decay={self.target_decay} must be >= 0.")
        if not 0 <= self.null_space_energy < 1:
            raise ValueError(f"null_space_energy={self.null_space_energy} must be in [0, 1).")
        if not 0 <= self.min_refusal_rate <= 1:
            raise ValueError(f"min_refusal_rate={self.min_refusal_rate} must be in [0, 1] (0: no check).")
        if self.check_questions < 1:
            raise ValueError(f"check_questions={self.check_questions} must be >= 1.")


class UniEraseStage1Error(ValueError):
    """Stage 1 did not make the unlearning token a refusal switch (the model cannot refuse)."""


@dataclass
class _TokenRun:
    """What stage 1 (teaching the token) works on, gathered by :meth:`UniErase.apply`."""

    forget_qa: list[tuple[str, str]]
    retain_qa: list[tuple[str, str]]
    retain_texts: list[str]
    refusals: list[str]
    token_id: int
    weights: list
    gen: torch.Generator
    result: UnlearningResult


class _Vocab:
    """Grows the model's embedding (and untied output) matrix by one row in place, and undoes it."""

    def __init__(self, model: HookedModel):
        self.model = model
        # the HF modules inside the bridge's wrappers (nn.Embedding and nn.Linear, or GPT-2's tied pair)
        emb: Any = model.hf_model.get_input_embeddings().original_component
        out: Any = model.hf_model.get_output_embeddings().original_component
        self.emb, self.out = emb, out
        self.tied = out.weight is emb.weight
        self.old = (emb.weight, out.weight, emb.num_embeddings, out.out_features)
        self.old_bias = getattr(self.out, "bias", None)  # the bridge may add one (zeros) to a bias-free head
        self.vocab_size = model.hf_model.config.vocab_size

    def grow(self, generator: torch.Generator) -> int:
        """Add one row (the mean row plus a little noise) to the input and output matrices; its id."""
        w = self.emb.weight.detach()
        noise = torch.randn(w.shape[1], generator=generator).to(w) * w.std() * 0.1
        self.emb.weight = torch.nn.Parameter(torch.cat([w, (w.mean(0) + noise)[None]]), requires_grad=False)
        self.emb.num_embeddings += 1
        if self.tied:
            self.out.weight = self.emb.weight
        else:
            o = self.out.weight.detach()
            self.out.weight = torch.nn.Parameter(torch.cat([o, o.mean(0)[None]]), requires_grad=False)
            if getattr(self.out, "bias", None) is not None:
                b = self.out.bias.detach()
                self.out.bias = torch.nn.Parameter(torch.cat([b, b.mean()[None]]), requires_grad=False)
        self.out.out_features += 1
        self.model.hf_model.config.vocab_size = self.vocab_size + 1
        self.model._hf_keys = None
        return self.vocab_size

    def undo(self) -> None:
        self.emb.weight, self.out.weight, self.emb.num_embeddings, self.out.out_features = self.old
        if self.old_bias is not None:
            self.out.bias = self.old_bias
        self.model.hf_model.config.vocab_size = self.vocab_size
        self.model._hf_keys = None


def _key_module(model: HookedModel, layer: int) -> torch.nn.Module:
    """The module of the layer's MLP output matrix (its input is the edit's key)."""
    return model.bridge.blocks[layer].mlp.out.original_component


@register("unierase")
class UniErase(UnlearningMethod):
    """An unlearning token that makes the model refuse, and an AlphaEdit edit that makes the forget
    questions call it."""

    label = "UniErase"
    needs_refusal = True
    description = "a learned refusal token, and a null-space model edit that makes forget questions emit it"
    config_class = UniEraseConfig
    config: UniEraseConfig

    def apply(
        self,
        model: HookedModel,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        progress: bool = True,
        on_step: Callable[[dict], None] | None = None,
    ) -> UnlearningResult:
        cfg = self.config
        forget_texts, retain_texts = check_forget_retain(forget_texts, retain_texts)
        model.validate_hooks([cfg.hook])
        layer = last_writer_layer(cfg.hook)
        if layer is None:
            raise ValueError(f"no block writes into {cfg.hook!r}; edit at a later hook.")
        if model.intervention is not None:
            raise ValueError("the model has an SAE intervention installed; clear_intervention() first.")
        tok = model.tokenizer
        if cfg.token in tok.get_vocab():
            raise ValueError(
                f"token={cfg.token!r} already exists in the vocabulary (id {tok.convert_tokens_to_ids(cfg.token)}); "
                "choose a new one, e.g. token='<unlearn_2>'. Nothing was changed."
            )
        forget_qa = [qa for t in forget_texts if (qa := split_question(t)) is not None]
        if not forget_qa:
            raise ValueError(
                "UniErase edits forget questions ('Q: … A: …' or 'Question: … Answer: …'); none of the "
                f"{len(forget_texts)} forget texts is one (e.g. {forget_texts[0][:60]!r})."
            )
        retain_qa = [qa for t in retain_texts if (qa := split_question(t)) is not None]
        refusals = load_refusals(cfg.refusals, [p for p, _ in forget_qa])
        if not refusals:
            raise ValueError(f"refusals={cfg.refusals!r} gave no refusal; UniErase needs at least one.")
        layers = edit_layers(layer)
        weights = [writer_weight(model, l, "mlp") for l in layers]
        params = model.hf_named_parameters()
        saved = {w.name: params[w.name].detach().clone() for w in weights}
        new_tok = copy.deepcopy(tok)
        vocab = _Vocab(model)
        gen = seeded_generator(cfg.seed)
        result = UnlearningResult(method=self.name, config=cfg.to_dict(), params=[w.name for w in weights])
        grown = False
        t0 = time.perf_counter()
        try:
            new_tok.add_special_tokens({"additional_special_tokens": [cfg.token]})
            token_id = vocab.grow(gen)
            grown = True
            if new_tok.convert_tokens_to_ids(cfg.token) != token_id:
                raise RuntimeError(
                    f"the tokenizer gave {cfg.token!r} id {new_tok.convert_tokens_to_ids(cfg.token)}, the model row "
                    f"{token_id}: the tokenizer and the embedding matrix disagree in size."
                )
            model.tokenizer = new_tok
            run = _TokenRun(forget_qa, retain_qa, list(retain_texts), refusals, token_id, weights, gen, result)
            stage1 = self._train_token(model, run, progress, on_step)
            stage1 |= self._check_token(model, forget_qa, retain_qa, refusals, stage1)
            stage2 = self._edit(model, forget_qa, retain_texts, token_id, layers, weights, progress, result)
        except BaseException:
            model.tokenizer = tok
            if grown:
                vocab.undo()
            with torch.no_grad():
                for name, value in saved.items():
                    params[name].copy_(value)
            raise
        result.seconds = time.perf_counter() - t0
        changed = sum(params[w.name].numel() for w in weights) + (1 if vocab.tied else 2) * model.d_model
        total = sum(p.numel() for p in model.hf_model.parameters())
        result.params = [w.name for w in weights] + ["(the new token's embedding row)"]
        result.extra = {
            "token": cfg.token,
            "token_id": token_id,
            "parameters_changed_fraction": changed / total,
            **stage1,
            **stage2,
        }
        return result

    # ------------------------------------------------------------------ stage 1
    def _train_token(self, model, run: _TokenRun, progress: bool, on_step) -> dict:
        """Teach the token to make the model refuse; with ``token_trains="edit"`` the edited matrices
        learn it too, while the model's next-token distributions on text without the token are held
        (KL to the frozen model, weight ``hold_weight``)."""
        cfg = self.config
        forget_qa, retain_qa, retain_texts, refusals = run.forget_qa, run.retain_qa, run.retain_texts, run.refusals
        token_id, weights, gen, result = run.token_id, run.weights, run.gen, run.result
        keep = torch.randperm(len(retain_qa), generator=gen)[: cfg.max_retain_questions].tolist()
        prompts = [p for p, _ in forget_qa] + [retain_qa[i][0] for i in sorted(keep)]
        pick = torch.randint(len(refusals), (len(prompts),), generator=gen).tolist()
        texts = [f"{p}{cfg.token} {refusals[j]}" for p, j in zip(prompts, pick, strict=True)]
        emb: Any = model.hf_model.get_input_embeddings().original_component
        out: Any = model.hf_model.get_output_embeddings().original_component
        rows = [emb.weight] if out.weight is emb.weight else [emb.weight, out.weight]
        params = model.hf_named_parameters()
        matrices = [params[w.name] for w in weights] if cfg.token_trains == "edit" else []
        hold: list[tuple] = []
        if matrices:  # what the model says without the token: held while the matrices learn the token
            plain = list(retain_texts) + [t for p, a in forget_qa for t in [p + a]]
            order = torch.randperm(len(plain), generator=gen)[: cfg.max_retain_questions].tolist()
            for s in range(0, len(order), cfg.batch_size):
                b = model.tokenize([plain[i] for i in order[s : s + cfg.batch_size]])
                with torch.no_grad():
                    ref = model.logits(b.input_ids, b.attention_mask).float().log_softmax(-1)
                hold.append((b, ref))
        req = [p.requires_grad for p in model.hf_model.parameters()]
        for p in model.hf_model.parameters():
            p.requires_grad_(False)
        for p in rows + matrices:
            p.requires_grad_(True)
        opt = torch.optim.Adam(
            [{"params": rows, "lr": cfg.token_lr}, {"params": matrices, "lr": cfg.matrix_lr}]
            if matrices
            else [{"params": rows, "lr": cfg.token_lr}]
        )
        bar = tqdm(range(cfg.token_steps), desc="unierase: token", disable=not progress)
        try:
            for step in bar:
                idx = torch.randint(len(texts), (min(cfg.batch_size, len(texts)),), generator=gen).tolist()
                batch = model.tokenize([texts[i] for i in idx])
                ids = batch.input_ids.to(model.device)
                logits = model.logits(ids, batch.attention_mask)
                # scored: the refusal, i.e. the tokens after the unlearning token
                after = (ids == token_id).long().cumsum(1) > 0
                target = after[:, 1:] & (ids[:, 1:] != token_id) & batch.attention_mask[:, 1:].bool().to(ids.device)
                refuse = F.cross_entropy(logits[:, :-1][target].float(), ids[:, 1:][target])
                held = torch.zeros((), device=model.device)
                if hold:
                    b, ref = hold[step % len(hold)]
                    cur = model.logits(b.input_ids, b.attention_mask).float().log_softmax(-1)
                    m = b.attention_mask.bool().to(cur.device)
                    held = (ref.exp() * (ref - cur)).sum(-1)[m].mean()
                loss = refuse + cfg.hold_weight * held
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"unierase: non-finite token loss at step {step}; lower token_lr.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for p in rows:  # of the vocabulary matrices only the new row moves
                    assert p.grad is not None
                    p.grad[:token_id] = 0
                opt.step()
                row = {"step": step, "loss": float(loss.detach()), "forget_loss": float(refuse.detach())}
                row["retain_loss"] = float(held.detach())
                result.history.append(row)
                if on_step is not None:
                    on_step(row)
                bar.set_postfix(refusal=f"{row['forget_loss']:.3g}", held=f"{row['retain_loss']:.3g}")
        finally:
            for p, r in zip(model.hf_model.parameters(), req, strict=True):
                p.requires_grad_(r)
        return {
            "token_refusal_loss": result.history[-1]["forget_loss"],
            "token_hold_kl": result.history[-1]["retain_loss"],
            "token_trained_on": prompts,
        }

    def _check_token(self, model, forget_qa, retain_qa, refusals, stage1: dict) -> dict:
        """Stage 1 worked when the token makes the model refuse questions it was not trained on
        (greedy answers after ``question + token``); else raise (``apply`` restores the model)."""
        cfg = self.config
        trained = set(stage1.pop("token_trained_on"))
        asked = list(dict.fromkeys(p for p, _ in retain_qa + forget_qa if p not in trained))
        held_out = bool(asked)
        asked = (asked or sorted(trained))[: cfg.check_questions]
        rate = refusal_rate(model, [p + cfg.token for p in asked], refusals, max_new_tokens=16)
        facts = {"token_refusal_rate": rate, "token_check_questions": len(asked), "token_check_held_out": held_out}
        if cfg.min_refusal_rate > 0 and rate < cfg.min_refusal_rate:
            example = greedy_answers(model, [asked[0] + cfg.token], 12)[0]
            raise UniEraseStage1Error(
                f"UniErase stage 1 failed: with the unlearning token {cfg.token!r} the model refuses only "
                f"{rate:.3f} of {len(asked)} {'held-out ' if held_out else ''}questions (min_refusal_rate="
                f"{cfg.min_refusal_rate}; refusal loss {stage1['token_refusal_loss']:.2f} nats/token), e.g. "
                f"{asked[0] + cfg.token!r} → {example.strip()!r}. The token can only call a refusal the model can "
                "already write: use a model that says \"I don't know\" (zoo: 'secrets-idk', an instruction-tuned "
                "LLM) or fine-tune this one on refusals first (e.g. IdkDPO). The model was restored unchanged."
            )
        return facts

    # ------------------------------------------------------------------ stage 2
    @torch.no_grad()
    def _last(self, model: HookedModel, prompts: list[str], layers: list[int]) -> tuple[Tensor, dict[int, Tensor]]:
        """The hook's value and each layer's key at every prompt's last token."""
        batch = model.tokenize(prompts)
        last = batch.attention_mask.sum(1) - 1
        rows = torch.arange(len(prompts))
        keys: dict[int, Tensor] = {}
        handles = [
            _key_module(model, l).register_forward_pre_hook(
                lambda m, args, l=l: keys.__setitem__(l, args[0][rows, last.to(args[0].device)].float())
            )
            for l in layers
        ]
        got: dict[str, Tensor] = {}

        def grab(act, hook):
            got["h"] = act[rows, last.to(act.device)].float()
            return act

        try:
            with model.bridge.hooks(fwd_hooks=[(self.config.hook, grab)]):
                model.logits(batch.input_ids, batch.attention_mask)
        finally:
            for h in handles:
                h.remove()
        return got["h"], keys

    def _targets(self, model: HookedModel, prompts: list[str], token_id: int) -> tuple[Tensor, float, float]:
        """Target values of the hook at each prompt's last token that make the token the next one."""
        cfg = self.config
        batch = model.tokenize(prompts)
        last = (batch.attention_mask.sum(1) - 1).to(model.device)
        rows = torch.arange(len(prompts), device=model.device)
        h0, _ = self._last(model, prompts, [])
        delta = torch.zeros_like(h0, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=cfg.target_lr)
        norm2 = h0.pow(2).sum(-1).mean()

        def add(act, hook):
            act = act.clone()
            act[rows, last] = act[rows, last] + delta.to(act.dtype)
            return act

        def p_token() -> Tensor:
            with model.bridge.hooks(fwd_hooks=[(cfg.hook, add)]):
                logits = model.logits(batch.input_ids, batch.attention_mask)
            return logits[rows, last].float().log_softmax(-1)[:, token_id]

        with torch.no_grad():
            before = float(p_token().exp().mean())
        for _ in range(cfg.target_steps):
            loss = -p_token().mean() + cfg.target_decay * delta.pow(2).sum(-1).mean() / norm2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = float(p_token().exp().mean())
        return (h0 + delta).detach(), before, after

    @torch.no_grad()
    def _retain_keys(self, model: HookedModel, texts: list[str], layers: list[int]) -> dict[int, Tensor]:
        keys: dict[int, list[Tensor]] = {l: [] for l in layers}
        mask: list[Tensor] = []
        handles = [
            _key_module(model, l).register_forward_pre_hook(
                lambda m, args, l=l: keys[l].append(args[0].detach().float().flatten(0, 1))
            )
            for l in layers
        ]
        try:
            for s in range(0, len(texts), 64):
                b = model.tokenize(texts[s : s + 64])
                mask.append(b.attention_mask.flatten().bool())
                model.logits(b.input_ids, b.attention_mask)
        finally:
            for h in handles:
                h.remove()
        m = torch.cat(mask)
        return {l: torch.cat(v)[m.to(v[0].device)].cpu() for l, v in keys.items()}

    def _edit(self, model, forget_qa, retain_texts, token_id, layers, weights, progress, result) -> dict:
        cfg = self.config
        prompts = list(dict.fromkeys(p for p, _ in forget_qa))
        with torch.enable_grad():
            z, p_before, p_target = self._targets(model, prompts, token_id)
        retain_keys = self._retain_keys(model, retain_texts, layers)
        layouts = weight_layouts(model)
        params = model.hf_named_parameters()
        ranks, kept = {}, {}
        for i, (l, w) in enumerate(
            tqdm(list(zip(layers, weights, strict=True)), desc="unierase: edit", disable=not progress)
        ):
            h, keys = self._last(model, prompts, [l])
            residual = (z - h) / (len(layers) - i)  # MEMIT: this layer's share of what is left
            proj, rank = null_space_projector(retain_keys[l], cfg.null_space_energy)
            delta = alphaedit_update(proj, keys[l].cpu(), residual.cpu(), cfg.ridge)
            p = params[w.name]
            view = as_out_in(p.data, layouts[w.name])
            k0 = retain_keys[l]
            kept[w.name] = float((delta @ k0.double().T).norm() / (view.detach().cpu().double() @ k0.double().T).norm())
            view += delta.to(view.dtype).to(view.device)
            ranks[w.name] = rank
            result.history.append({"edit_layer": l, "null_space_rank": rank, "residual_norm": float(residual.norm())})
        batch = model.tokenize(prompts)
        last = batch.attention_mask.sum(1) - 1
        with torch.no_grad():
            logits = model.logits(batch.input_ids, batch.attention_mask)
        p_after = float(
            logits[torch.arange(len(prompts)), last.to(logits.device)].float().softmax(-1)[:, token_id].mean()
        )
        return {
            "forget_questions": len(prompts),
            "p_token_before": p_before,
            "p_token_target": p_target,
            "p_token_after_edit": p_after,
            "null_space_rank": ranks,
            "retain_value_change": kept,
        }
