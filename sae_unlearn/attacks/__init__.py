"""Attacks that try to bring forgotten knowledge back (each leaves the model as it found it).

- :mod:`relearn`: benign relearning (Hu et al. 2024) — fine-tune a few steps on related text
  that excludes the evaluated facts, then ask again.
- :mod:`prompts`: paraphrased questions, jailbreak-style prefixes, role-play, few-shot context.
- :mod:`probe`: a linear probe on hidden activations that picks the true answer among wrong ones.
- :mod:`logit_lens`: read the answer off every layer's residual stream.
- :mod:`quantize`: round-to-nearest int8 / 4-bit weight quantisation before querying
  (Zhang et al. 2024, "Catastrophic Failure of LLM Unlearning via Quantization").
"""

from sae_unlearn.attacks.logit_lens import LogitLensResult, logit_lens
from sae_unlearn.attacks.probe import ProbeResult, truth_probe
from sae_unlearn.attacks.prompts import PROMPT_ATTACKS, attack_prompts, prompt_attacks
from sae_unlearn.attacks.quantize import quantize_tensor, quantized
from sae_unlearn.attacks.relearn import RelearnConfig, relearn_sweep

__all__ = [
    "PROMPT_ATTACKS",
    "LogitLensResult",
    "ProbeResult",
    "RelearnConfig",
    "attack_prompts",
    "logit_lens",
    "prompt_attacks",
    "quantize_tensor",
    "quantized",
    "relearn_sweep",
    "truth_probe",
]
