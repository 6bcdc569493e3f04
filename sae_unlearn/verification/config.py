"""How a model is verified: :class:`VerifyConfig` (margins, confidence, every registered attack's
config under its name, naturalness, what to skip). See :mod:`sae_unlearn.verification.report`."""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

from sae_unlearn.attacks import ATTACKS, Attack, attack_configs
from sae_unlearn.evaluation.naturalness import NaturalnessConfig
from sae_unlearn.utils import DictConfig

_RENAMED = {
    "relearn_steps": "attacks={'relearn': {'steps': ...}}",
    "relearn_lr": "attacks={'relearn': {'lrs': (...)}}",
    "relearn_batch_size": "attacks={'relearn': {'batch_size': ...}}",
    "quant_bits": "attacks={'quantization': {'bits': ...}}",
    "quant_group_size": "attacks={'quantization': {'group_size': ...}}",
    "probe_steps": "attacks={'probe': {'steps': ...}}",
}


@dataclass
class _VerifyFields(DictConfig):
    """How a model is verified. Each attack has its own config under ``attacks`` (by name)."""

    attacks: dict[str, Any] = field(default_factory=dict)
    """Attack name → its config (or a dict of its settings); attacks not named run with their
    defaults. Names: :data:`sae_unlearn.attacks.ATTACKS`."""
    skip: tuple[str, ...] = ()
    """Attacks not run."""
    naturalness: NaturalnessConfig | None = field(default_factory=NaturalnessConfig)
    """How natural the answers to forget questions are (``None``: not measured)."""
    margin: float = 0.1
    """How far above the oracle (absolute accuracy) an attack must get to count as recovering knowledge."""
    forget_quality_threshold: float = 0.05
    """Forget quality (KS p-value) below which the model is distinguishable from the oracle."""
    confidence: float = 0.95
    """Confidence level of the intervals on each model−oracle gap."""
    batch_size: int = 64
    """Texts per forward pass."""
    seed: int = 0
    """Seed of probes and the distinguisher (the relearning grid has its own seeds)."""
    alpha: float | None = None
    """Deprecated name of ``forget_quality_threshold`` (``alpha`` is the retain-loss weight in
    unlearning configs); still accepted for one release with a ``DeprecationWarning``."""

    def __post_init__(self) -> None:
        if self.alpha is not None:
            warnings.warn(
                "VerifyConfig(alpha=...) is deprecated: use forget_quality_threshold=... (alpha is the retain "
                "loss weight in unlearning configs).",
                DeprecationWarning,
                stacklevel=4,
            )
            self.forget_quality_threshold, self.alpha = self.alpha, None
        if isinstance(self.skip, list):
            self.skip = tuple(self.skip)
        if isinstance(self.naturalness, dict):
            self.naturalness = NaturalnessConfig.from_settings(self.naturalness, "naturalness")
        if not isinstance(self.attacks, dict):
            raise TypeError(f"attacks={self.attacks!r} must be a dict: attack name → config or settings.")
        super().__post_init__()
        self.attacks = attack_configs(self.attacks)
        for name in self.skip:
            if name not in ATTACKS:
                close = difflib.get_close_matches(name, list(ATTACKS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else "."
                raise ValueError(f"skip={self.skip}: unknown attack {name!r}{hint} Attacks: {', '.join(self.attacks)}.")
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin={self.margin} must be in [0, 1) (an accuracy difference).")
        if not 0 < self.forget_quality_threshold < 1:
            raise ValueError(
                f"forget_quality_threshold={self.forget_quality_threshold} must be in (0, 1) (a p-value threshold)."
            )
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence={self.confidence} must be in [0.5, 1), e.g. 0.95.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1.")

    def active_attacks(self) -> list[Attack]:
        """The attacks to run, configured."""
        return [ATTACKS[name](cfg) for name, cfg in self.attacks.items() if name not in self.skip]

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("alpha")  # deprecated alias, always folded into forget_quality_threshold
        return d


class VerifyConfig(_VerifyFields):
    """How a model is verified (fields: :class:`_VerifyFields`); an attack's settings go under its
    name, e.g. ``VerifyConfig(attacks={"relearn": {"steps": (0, 10)}, "probe": {"steps": 100}})``.
    The flat names of earlier releases (``relearn_steps``, ``probe_steps``, …) raise ``TypeError``
    naming the new place."""

    def __init__(self, **kwargs: Any) -> None:
        old = [k for k in kwargs if k in _RENAMED]
        if old:
            raise TypeError(
                f"VerifyConfig({old[0]}=...) is gone: each attack has its own config; use {_RENAMED[old[0]]}."
            )
        super().__init__(**kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> VerifyConfig:
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)} and k != "alpha"})
