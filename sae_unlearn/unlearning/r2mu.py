"""R²MU — Reasoning-aware Representation Misdirection for Unlearning (Wang et al. 2025,
"Reasoning Model Unlearning: Forgetting Traces, Not Just Answers, While Preserving Reasoning Skills").

A reasoning model can stop giving a forgotten answer and still state it while thinking: RMU
trained on answers leaves the chain of thought untouched. R²MU adds two terms to RMU's loss at the
steered layer:

- *unthinking*: the model's own reasoning traces on the forget questions (each question followed
  by the reasoning trigger, the greedy trace generated once by the original model, cut at the
  end-of-trace marker or after ``trace_tokens`` tokens; the public code keeps about the first 100)
  are steered to the same control vector as the forget answers, question and trace alike;
- *reasoning preservation*: traces on retain questions (generated the same way; those the model
  completes, up to ``max_retain_traces``) are held at the frozen model's activations, so the model
  keeps reasoning about everything else (the public code uses a chain-of-thought dataset; here the
  model's own reasoning on the retain questions plays that part).

``loss = forget + unthink_weight · unthink + alpha · (retain + reasoning_weight · reasoning)``.
The public setting on an 8B model steers layer 7 and updates ``down_proj`` of layers 5-7
(the toolkit's default edit: the MLP output matrices of the steered layer and the two before it),
with c = 6.5.

The questions are read off the forget (retain) texts: every text with a ``?`` gives the text up to
its first ``?``. A model that closes no trace under the trigger on any forget question does not
reason and cannot be unlearned this way: that is refused before any weight changes, naming a
generation. Registered as ``r2mu`` (RMU's random
control vector) and ``sspu_r2mu`` (SSPU with R²MU's two trace terms: control vector in the
SAE-irrelevant subspace, updates in the relevant one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sae_unlearn.data.reasoning import END_OF_TRACE, TRIGGER
from sae_unlearn.evaluation.reasoning import generate_traces
from sae_unlearn.models.loading import HookedModel, TokenBatch
from sae_unlearn.unlearning.base import UnlearningConfig, activations_with_grad, make_batches, masked_mse
from sae_unlearn.unlearning.registry import register
from sae_unlearn.unlearning.rmu import RMU
from sae_unlearn.unlearning.sspu import SSPU, SSPUConfig
from sae_unlearn.unlearning.trainer import TrainRun
from sae_unlearn.utils import DictConfig, seeded_generator


@dataclass
class TraceSettings(DictConfig):
    """R²MU's settings on top of a steering method's."""

    trigger: str = TRIGGER
    """Appended to each question to make the model reason (the zoo's: ``" Let's reason step by step. <think>"``)."""
    end_of_trace: str = END_OF_TRACE
    """What closes a trace; a generation without it within ``trace_tokens`` does not count as a trace."""
    trace_tokens: int = 48
    """Tokens generated per question (the public code keeps about the first 100 of a long trace)."""
    unthink_weight: float = 1.0
    """Weight of the unthinking term (forget traces → control vector)."""
    reasoning_weight: float = 1.0
    """Weight, relative to the retain term, of holding retain traces at the frozen model's activations."""
    max_retain_traces: int = 64
    """Retain traces held for reasoning preservation (a seeded sample of those the model completes)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.trigger.strip() or not self.end_of_trace.strip():
            raise ValueError(
                f"trigger={self.trigger!r} and end_of_trace={self.end_of_trace!r} must be non-empty "
                "(what makes the model reason, and what closes its trace)."
            )
        for name in ("trace_tokens", "max_retain_traces"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        for name in ("unthink_weight", "reasoning_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")


@dataclass
class R2MUConfig(TraceSettings, UnlearningConfig):
    """R²MU: RMU's settings plus the trace terms'."""


@dataclass
class SSPUR2MUConfig(TraceSettings, SSPUConfig):
    """SSPU with R²MU's trace terms: SSPU's settings plus the trace terms'."""


def questions_of(texts: list[str]) -> list[str]:
    """The distinct questions in ``texts`` (each text with a ``?``, up to and including its first one)."""
    return list(dict.fromkeys(t[: t.index("?") + 1] for t in texts if "?" in t))


def elicit_traces(
    model: HookedModel, questions: list[str], settings: TraceSettings, batch_size: int = 64
) -> tuple[list[str], list[bool], list[str]]:
    """``(traces, closed, generations)``: question + trigger + the model's greedy trace (up to and
    including the end-of-trace marker, or all ``trace_tokens`` tokens when it does not close),
    whether each closed, and the raw generations."""
    prompts = [q + settings.trigger for q in questions]
    res = generate_traces(model, prompts, settings.end_of_trace, settings.trace_tokens, batch_size)
    traces = [
        p + t + (settings.end_of_trace if c else "") for p, t, c in zip(prompts, res.traces, res.closed, strict=True)
    ]
    return traces, res.closed, res.generations


class TraceTerms:
    """Adds R²MU's unthinking and reasoning-preservation terms to a steering method (a mixin)."""

    reasoning = True
    config: Any

    def forget_batches(self, model: HookedModel, forget_texts: list[str]) -> list[Any]:
        """Pairs ``(answers batch, trace batch)``; the traces are elicited here, before any update,
        and a model that gives none is refused."""
        cfg = self.config
        questions = questions_of(forget_texts)
        if not questions:
            raise ValueError(
                f"{type(self).__name__}: none of the {len(forget_texts)} forget texts is a question (no '?'), e.g. "
                f"{forget_texts[0][:60]!r}; R²MU elicits reasoning traces from the forget questions. "
                "Add the questions about the forget set to the forget texts."
            )
        traces, closed, gens = elicit_traces(model, questions, cfg, cfg.batch_size)
        if not any(closed):
            raise ValueError(
                f"{type(self).__name__}: the model closed no reasoning trace (no {cfg.end_of_trace!r} within "
                f"trace_tokens={cfg.trace_tokens}) on any of the {len(questions)} forget questions under "
                f"trigger={cfg.trigger!r}; e.g. {questions[0] + cfg.trigger!r} → {gens[0][:80]!r}. R²MU needs a model "
                "that reasons under the trigger (zoo: 'secrets-reasoning'), or give this model's own trigger and "
                "end_of_trace. Nothing was changed."
            )
        answers = make_batches(model, forget_texts, cfg.batch_size, cfg.seed)
        trace_batches = make_batches(model, traces, cfg.batch_size, cfg.seed + 3)
        n = max(len(answers), len(trace_batches))
        return [(answers[i % len(answers)], trace_batches[i % len(trace_batches)]) for i in range(n)]

    def setup(self, run: TrainRun) -> None:
        super().setup(run)  # type: ignore[misc]  # the steering method's control vector and frozen retain activations
        cfg = self.config
        questions = questions_of(run.retain_texts)
        traces, closed, _ = elicit_traces(run.model, questions, cfg, cfg.batch_size) if questions else ([], [], [])
        # reasoning to preserve: the traces the model completes (all of them if it completes none)
        traces = [t for t, c in zip(traces, closed, strict=True) if c] or traces
        if len(traces) > cfg.max_retain_traces:
            keep = torch.randperm(len(traces), generator=seeded_generator(cfg.seed + 4))[: cfg.max_retain_traces]
            traces = [traces[i] for i in sorted(keep.tolist())]
        batches = make_batches(run.model, traces, cfg.batch_size, cfg.seed + 5) if traces else []
        run.state["reasoning_batches"] = batches
        run.state["reasoning_frozen"] = [activations_with_grad(run.model, b, cfg.hook) for b in batches]
        run.state["n_traces"] = {
            "forget": sum(
                int(b.attention_mask.shape[0]) for b in {id(p[1]): p[1] for p in run.forget_batches}.values()
            ),
            "retain": len(traces),
        }

    def step_loss(
        self,
        run: TrainRun,
        forget: Any,
        forget_index: int,
        retain: TokenBatch,
        retain_index: int,
    ) -> dict[str, Tensor]:
        answers, traces = forget  # what forget_batches built: (answers batch, trace batch)
        terms = super().step_loss(run, answers, forget_index, retain, retain_index)  # type: ignore[misc]
        cfg, hook = self.config, self.config.hook
        ta = activations_with_grad(run.model, traces, hook)
        unthink = masked_mse(ta, run.state["control"], traces.attention_mask.to(ta.device))
        terms["unthink_loss"] = unthink
        terms["loss"] = terms["loss"] + cfg.unthink_weight * unthink
        batches = run.state["reasoning_batches"]
        if batches:
            k = retain_index % len(batches)
            ca = activations_with_grad(run.model, batches[k], hook)
            reason = masked_mse(ca, run.state["reasoning_frozen"][k], batches[k].attention_mask.to(ca.device))
            terms["reasoning_loss"] = reason
            terms["loss"] = terms["loss"] + cfg.alpha * cfg.reasoning_weight * reason
        return terms

    def finish(self, run: TrainRun, result) -> None:
        super().finish(run, result)  # type: ignore[misc]
        result.extra = {**result.extra, "traces": run.state.get("n_traces", {})}


@register("r2mu")
class R2MU(TraceTerms, RMU):
    """R²MU: RMU plus unthinking (forget traces → the random control vector) and reasoning preservation."""

    label = "R²MU"
    description = "RMU plus the model's own forget traces steered away and retain traces held (reasoning models)"
    config_class = R2MUConfig
    config: R2MUConfig


@register("sspu_r2mu")
class SSPUR2MU(TraceTerms, SSPU):
    """SSPU with R²MU's trace terms."""

    label = "SSPU+R²MU"
    description = (
        "SSPU plus R²MU's trace terms: forget traces steered into the SAE-irrelevant subspace (reasoning models)"
    )
    config_class = SSPUR2MUConfig
    config: SSPUR2MUConfig

    def __init__(self, relevant, irrelevant, config: SSPUR2MUConfig | None = None):
        super().__init__(relevant, irrelevant, config or SSPUR2MUConfig())
        if self.config.target != "random":
            raise ValueError(
                f"target={self.config.target!r}: SSPU+R²MU steers the model's own traces, which have no frozen "
                "activations to ablate; use target='random'."
            )
