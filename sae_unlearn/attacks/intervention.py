"""Intervention removed: a weight-free method (an SAE intervention, :mod:`sae_unlearn.interventions`)
leaves the original weights in place, so whoever holds the weights can simply drop the hook.

The attack asks the forget questions with the intervention uninstalled. On a model without one
(the oracle, any weight-changing method) it measures the plain forget accuracy, which is what the
intervention's row is compared with; only a model that carries an intervention gets a row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sae_unlearn.attacks.base import Attack, AttackContext, AttackResult, Score, register_attack
from sae_unlearn.utils import DictConfig


@dataclass
class InterventionRemovedConfig(DictConfig):
    """Nothing to set."""


@register_attack
class InterventionRemovedAttack(Attack):
    """Forget accuracy with the model's SAE intervention uninstalled."""

    name = "intervention_removed"
    title = "intervention removed"
    Config = InterventionRemovedConfig
    order = 70

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict:
        """Forget accuracy with the intervention removed (``None`` where none was installed)."""
        if result is None or not result.details["installed"]:
            return {"intervention_removed": None}
        return {"intervention_removed": result.scores["intervention removed"].value}

    def run(self, model, data, context: AttackContext) -> AttackResult:
        from sae_unlearn.evaluation.knowledge import evaluate_knowledge
        from sae_unlearn.interventions import intervention_off

        t0 = time.perf_counter()
        installed = getattr(model, "intervention", None) is not None
        with intervention_off(model):
            acc = evaluate_knowledge(model, data.split.forget, batch_size=context.batch_size).known_fraction
        score = Score(acc, len(data.split.forget))
        return AttackResult({self.title: score}, {"installed": installed}, time.perf_counter() - t0)

    def compare(self, model: AttackResult, oracle: AttackResult) -> list[tuple[str, Score, Score]]:
        if not model.details.get("installed"):
            return []
        return super().compare(model, oracle)
