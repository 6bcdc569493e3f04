"""The attack protocol: one class per attack, a registry, and the statistics of a recovered fact count.

An attack tries to bring forgotten knowledge back. It is run identically on the unlearned model
and on the retain oracle, and judged by the gap between the two: a model from which the
knowledge was removed gives the attacker no more than the oracle, which never knew it.

- :class:`Attack` — ``run(model, data, context)`` returns an :class:`AttackResult`: one or more
  :class:`Score` s (a share of facts recovered, with the number of facts behind it) and JSON-able
  details (curves, per-layer values). ``compare(model_result, oracle_result)`` pairs them into
  the rows the verdict judges; layer-wise attacks (:class:`LayeredAttack`) let the attacker take
  the layer where the model exceeds the oracle most.
- :func:`register_attack` — a new attack is one module with one registered class; verification,
  its report, the widgets and the verdict pick it up from :data:`ATTACKS`.
- :func:`wilson_interval` and :func:`difference_interval` — forget sets of 12-20 facts make a
  0.1 margin one or two facts, so every comparison carries a confidence interval (Wilson score
  for a share; Newcombe's hybrid score interval for the difference of two shares, Newcombe 1998).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from scipy.stats import norm

from sae_unlearn.utils import DictConfig

if TYPE_CHECKING:
    from sae_unlearn.attacks.data import VerificationData
    from sae_unlearn.models.loading import HookedModel


def wilson_interval(share: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a share ``share`` of ``n`` trials (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    denom = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denom
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(a: Score, b: Score, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``a.value - b.value`` (two independent shares)."""
    la, ua = a.interval(confidence)
    lb, ub = b.interval(confidence)
    d = a.value - b.value
    return (
        d - math.sqrt((a.value - la) ** 2 + (ub - b.value) ** 2),
        d + math.sqrt((ua - a.value) ** 2 + (b.value - lb) ** 2),
    )


@dataclass(frozen=True)
class Score:
    """A share of facts an attack recovers, and how many facts it was measured on."""

    value: float
    n: int
    """Facts behind ``value`` (the width of its confidence interval)."""

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.value, self.n, confidence)

    def to_dict(self) -> dict:
        return {"value": self.value, "n": self.n}


@dataclass
class AttackResult:
    """What one attack found on one model."""

    scores: dict[str, Score]
    """Label → recovered share (what is compared with the oracle's same label)."""
    details: dict[str, Any] = field(default_factory=dict)
    """JSON-able evidence: curves, per-layer values, the configuration that did best."""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "scores": {k: s.to_dict() for k, s in self.scores.items()},
            "details": self.details,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> AttackResult:
        scores = {k: Score(float(s["value"]), int(s["n"])) for k, s in d["scores"].items()}
        return cls(scores, d.get("details", {}), float(d.get("seconds", 0.0)))


@dataclass
class AttackContext:
    """What every attack may use besides the model and the data."""

    batch_size: int = 64
    seed: int = 0
    progress: bool = False
    reference: HookedModel | None = None
    """The original model (before unlearning), when the caller has it: the direction-ablation
    attack reads the direction the unlearned model writes as its difference to this one."""


class Attack(ABC):
    """One attack. Subclasses set ``name``, ``title`` and ``Config`` and implement :meth:`run`."""

    name: ClassVar[str]
    """Registry key (also the key of its config in ``VerifyConfig.attacks``)."""
    title: ClassVar[str]
    """What a report calls it."""
    Config: ClassVar[type[DictConfig]]
    order: ClassVar[int] = 100
    """Where a report lists it (then by name): registration order depends on import order."""

    def __init__(self, config: DictConfig | None = None):
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(
                f"attack {self.name!r} takes a {self.Config.__name__}, got {type(self.config).__name__}; "
                f"e.g. VerifyConfig(attacks={{{self.name!r}: {self.Config.__name__}(...)}})."
            )

    def applies(self, model: HookedModel, data: VerificationData) -> bool:  # noqa: ARG002
        """Whether the attack runs on this model and data (default: always)."""
        return True

    def check(self, model: HookedModel) -> None:  # noqa: ARG002
        """Raise ``ValueError`` if the config cannot run on ``model``; called for every attack
        before any runs, so a bad setting fails at once, not after minutes of attacking."""
        return None

    @abstractmethod
    def run(self, model: HookedModel, data: VerificationData, context: AttackContext) -> AttackResult:
        """Attack ``model`` (which must be left with the weights and hooks it came with)."""

    def compare(self, model: AttackResult, oracle: AttackResult) -> list[tuple[str, Score, Score]]:
        """Rows ``(label, model score, oracle score)`` the verdict judges; default: same labels."""
        return [(k, s, oracle.scores[k]) for k, s in model.scores.items() if k in oracle.scores]

    @classmethod
    def summarize(cls, result: AttackResult | None) -> dict[str, Any]:
        """The attack's headline numbers in a report's summary (the demo's ``report.json``, the
        benchmark tables); ``result`` is ``None`` where it did not run. Default: the highest share
        it recovered, ``{"<name>_max": value}``."""
        return {f"{cls.name}_max": max_score(result)}


class LayeredAttack(Attack):
    """An attack read at every layer (scores labelled by layer): the attacker takes the layer
    where the model exceeds the oracle most, as it would knowing both."""

    def compare(self, model: AttackResult, oracle: AttackResult) -> list[tuple[str, Score, Score]]:
        common = [k for k in model.scores if k in oracle.scores]
        if not common:
            return []
        best = max(common, key=lambda k: model.scores[k].value - oracle.scores[k].value)
        return [(f"{self.title} ({best})", model.scores[best], oracle.scores[best])]


def max_score(result: AttackResult | None) -> float | None:
    """The highest share an attack recovered (``None`` when it did not run or scored nothing)."""
    return max(s.value for s in result.scores.values()) if result and result.scores else None


ATTACKS: dict[str, type[Attack]] = {}
"""Registered attacks by name (a report lists them by ``order``)."""


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator: add an attack to :data:`ATTACKS` (its ``name`` must be new)."""
    if cls.name in ATTACKS and ATTACKS[cls.name] is not cls:
        raise ValueError(f"attack {cls.name!r} is already registered ({ATTACKS[cls.name].__qualname__}).")
    ATTACKS[cls.name] = cls
    return cls


def attack_configs(overrides: dict[str, Any] | None = None) -> dict[str, DictConfig]:
    """Every registered attack's config: defaults, with ``overrides`` (a config or a dict of
    settings per attack name) in their place. An unknown name or setting raises ``ValueError``."""
    import difflib

    overrides = dict(overrides or {})
    out: dict[str, DictConfig] = {}
    for name in overrides:
        if name not in ATTACKS:
            close = difflib.get_close_matches(name, list(ATTACKS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ValueError(f"unknown attack {name!r}{hint} Attacks: {', '.join(ATTACKS)}.")
    for name, cls in sorted(ATTACKS.items(), key=lambda kv: (kv[1].order, kv[0])):
        given = overrides.get(name)
        if given is None:
            out[name] = cls.Config()
        elif isinstance(given, cls.Config):
            out[name] = given
        elif isinstance(given, dict):
            out[name] = cls.Config.from_settings(given, what=f"attack {name!r}")
        else:
            raise TypeError(f"attacks[{name!r}]={given!r}: give a {cls.Config.__name__} or a dict of its settings.")
    return out
