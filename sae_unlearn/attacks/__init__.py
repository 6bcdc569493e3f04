"""Attacks that try to bring forgotten knowledge back (each leaves the model as it found it).

Every attack is a registered :class:`~sae_unlearn.attacks.base.Attack` (:data:`ATTACKS`), run the
same way on the unlearned model and on the retain oracle by :mod:`sae_unlearn.verification`:

- :mod:`relearn`: benign relearning (Hu et al. 2024; Deeb & Roger 2024) — fine-tune on related
  text that excludes the evaluated facts, over a grid of learning rates, seeds, full and LoRA;
- :mod:`direction`: project the direction unlearning writes out of the residual stream (Łucki et al. 2024);
- :mod:`prompts`: paraphrased questions, jailbreak-style prefixes, role-play, few-shot context;
- :mod:`probe`: a tuned-lens probe on hidden activations that picks the true answer among wrong ones;
- :mod:`logit_lens`: read the answer off every layer's residual stream;
- :mod:`quantize`: round-to-nearest int8 / 4-bit weights (Zhang et al. 2024);
- :mod:`intervention`: a weight-free method's hook removed.

A new attack is one module with one ``@register_attack`` class, imported here.

Room: the attacks and what they are run on (:class:`~sae_unlearn.attacks.data.VerificationData`).
Imports ``models``, ``data``, ``capture``, ``evaluation``, ``interventions``, ``utils``; never
``verification``, which runs them.
"""

from sae_unlearn.attacks.base import (
    ATTACKS,
    Attack,
    AttackContext,
    AttackResult,
    LayeredAttack,
    Score,
    attack_configs,
    difference_interval,
    register_attack,
    wilson_interval,
)
from sae_unlearn.attacks.relearn import RelearnAttackConfig, RelearnConfig, relearn_sweep  # isort: split

from sae_unlearn.attacks.direction import DirectionAblationConfig, ablation_directions
from sae_unlearn.attacks.intervention import InterventionRemovedConfig
from sae_unlearn.attacks.logit_lens import LogitLensResult, logit_lens
from sae_unlearn.attacks.probe import ProbeConfig, ProbeResult, truth_probe
from sae_unlearn.attacks.prompts import PROMPT_ATTACKS, PromptAttackConfig, attack_prompts, prompt_attacks
from sae_unlearn.attacks.quantize import QuantizeAttackConfig, quantize_tensor, quantized

__all__ = [
    "ATTACKS",
    "PROMPT_ATTACKS",
    "Attack",
    "AttackContext",
    "AttackResult",
    "DirectionAblationConfig",
    "InterventionRemovedConfig",
    "LayeredAttack",
    "LogitLensResult",
    "ProbeConfig",
    "ProbeResult",
    "PromptAttackConfig",
    "QuantizeAttackConfig",
    "RelearnAttackConfig",
    "RelearnConfig",
    "Score",
    "ablation_directions",
    "attack_configs",
    "attack_prompts",
    "difference_interval",
    "logit_lens",
    "prompt_attacks",
    "quantize_tensor",
    "quantized",
    "register_attack",
    "relearn_sweep",
    "truth_probe",
    "wilson_interval",
]
