"""UniErase's two stages on one zoo model with the settings given: what stage 1 reaches (the
refusal loss), what the edit does (P(token), forget/retain accuracy, refusal rates), a few answers.

    python benchmarks/unierase_probe.py secrets-idk
    python benchmarks/unierase_probe.py secrets '{"min_refusal_rate": 0}'
    python benchmarks/unierase_probe.py secrets '{"min_refusal_rate": 0, "token_trains": "edit", "token_steps": 400,
        "matrix_lr": 0.01}'

On a model that never learned to refuse (``secrets``) UniErase stops after stage 1 unless
``min_refusal_rate`` is 0, which this probe sets to show what the check prevents.

Single-threaded, so it can run beside another job without thread oversubscription (not a timing).
"""

from __future__ import annotations

import json
import sys

import torch

from sae_unlearn.data.refusals import REFUSALS
from sae_unlearn.evaluation.knowledge import greedy_answers
from sae_unlearn.evaluation.refusal import refusal_rate
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import knowledge_metrics, pipeline_data
from sae_unlearn.unlearning import UniErase


def main(name: str, settings: dict) -> None:
    torch.set_num_threads(1)
    data = pipeline_data(name)
    model = load_model(zoo_model_path(name, progress=False), device="cpu")
    config = UniErase.from_settings({"hook": "blocks.3.hook_resid_post", **settings})
    result = UniErase(config).apply(model, data.forget_texts, data.retain_texts, progress=False)
    losses = [h["forget_loss"] for h in result.history if "forget_loss" in h]
    print(name, json.dumps(settings), f"{result.seconds:.0f}s")
    print(
        "refusal loss (nats/token) every 50 steps:", [round(x, 2) for x in losses[::50]], "last", round(losses[-1], 2)
    )
    print({k: v for k, v in result.extra.items() if k not in ("null_space_rank", "retain_value_change")})
    print({k: round(v, 3) for k, v in knowledge_metrics(model, data.split).items()})
    for role in ("forget", "retain"):
        prompts = [q.prompt for q in getattr(data.split, role)]
        print(f"{role} questions refused: {refusal_rate(model, prompts, REFUSALS):.3f}")
    shown = [q.prompt for q in data.split.forget[:3] + data.split.retain[:3]]
    for q, a in zip(shown, greedy_answers(model, shown, 12), strict=True):
        print(f"  {q} ->{a}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "secrets-idk", json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
