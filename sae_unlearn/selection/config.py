"""The SAE stage's one config: how many latents, scored how, on which tokens, chosen at which
layer, and how the text is run (batch size, length, streaming), checked once where it is made.

:class:`SAEStageConfig` is what :func:`~sae_unlearn.pipeline.sae_stage`, the stored and the
streaming selection (:func:`~sae_unlearn.selection.select_layer_and_latents`,
:func:`~sae_unlearn.selection.streaming.select_layer_and_latents_streaming`), a recipe's
``[selection]`` section and the demo build; each of them also takes the fields as keywords
(``n_latents=16``), which update the config given (or the defaults) and are checked the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sae_unlearn.saes.config import SAEFitConfig
from sae_unlearn.selection.latents import SCORERS, Scorer
from sae_unlearn.utils import DictConfig, renamed_keyword

LayerRule = Literal["deepest_tied", "best"]
"""How the layer is chosen among the scored hooks (:func:`~sae_unlearn.selection.layers.choose_layer`)."""
LAYER_RULES: tuple[str, ...] = ("deepest_tied", "best")
Positions = Literal["all", "answer"]


@dataclass
class SAEStageConfig(DictConfig):
    """Settings of the SAE stage (capture → SAEs → layer and latent selection → subspaces)."""

    n_latents: int = 64
    """Relevant (and irrelevant) latents selected; at most the SAEs' width."""
    scorer: Scorer = "squared_mean_ratio"
    """How a latent's forget-specificity is scored (:data:`~sae_unlearn.selection.SCORERS`)."""
    threshold: float | None = None
    """Keep only latents scoring above it (still at most ``n_latents``); ``None``: the top ``n_latents``."""
    layer_rule: LayerRule = "deepest_tied"
    """``deepest_tied``: the deepest hook whose AUROC interval overlaps the best one's; ``best``: the best."""
    candidates: list[str] | None = None
    """Hooks the layer may be chosen from (every hook is scored). ``None``: the selection functions
    choose among all; :func:`~sae_unlearn.pipeline.sae_stage` among those with its default edit upstream."""
    positions: Positions = "all"
    """Tokens scored: ``all`` of the forget vs retain texts, or ``answer`` (the token before each fact's answer)."""
    streaming: bool = False
    """Select in one pass that stores no activations (given SAEs only)."""
    batch_size: int = 64
    """Texts per forward pass."""
    max_length: int | None = None
    """Truncate texts to this many tokens (``None``: the model's, or the SAEs', context)."""
    reconstruction: bool = True
    """Streaming: also gather the SAEs' reconstruction statistics (one decode per batch and SAE)."""
    spill_dir: str | Path | None = None
    """Streaming: folder for the temporary code files (default: the system's temporary folder)."""
    fit: SAEFitConfig | None = None
    """How SAEs are fitted when none are given (``None``: :class:`~sae_unlearn.saes.SAEFitConfig`'s defaults)."""

    def __post_init__(self) -> None:
        if not isinstance(self.spill_dir, str | None):  # a Path is welcome; stored as str (JSON-able)
            self.spill_dir = str(self.spill_dir)
        if isinstance(self.candidates, str):
            raise TypeError(
                f"candidates={self.candidates!r} is one string; pass a list of hooks, e.g. [{self.candidates!r}]."
            )
        if self.candidates is not None:
            self.candidates = list(self.candidates)
        if isinstance(self.n_latents, bool) or not isinstance(self.n_latents, int) or self.n_latents < 1:
            raise ValueError(f"n_latents={self.n_latents!r} must be an int >= 1.")
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer={self.scorer!r}; choose one of {SCORERS}.")
        if self.layer_rule not in LAYER_RULES:
            raise ValueError(f"layer_rule={self.layer_rule!r}; choose 'deepest_tied' or 'best'.")
        if self.positions not in ("all", "answer"):
            raise ValueError(
                f"positions={self.positions!r}; choose 'all' (every token) or 'answer' (the token before answers)."
            )
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size!r} must be an int >= 1.")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length={self.max_length!r} must be an int >= 1, or None for the full texts.")
        if self.positions == "answer" and self.streaming:
            raise ValueError("positions='answer' selects on the stored capture; use streaming=False.")
        if self.fit is not None and not isinstance(self.fit, SAEFitConfig):
            raise TypeError(f"fit={self.fit!r} must be an SAEFitConfig (how SAEs are fitted) or None.")

    def check_width(self, d_sae: int) -> None:
        """Refuse ``n_latents`` above the SAEs' width ``d_sae`` (before any capture)."""
        if self.n_latents > d_sae:
            raise ValueError(f"n_latents={self.n_latents} is more than the SAEs have (d_sae={d_sae}); lower it.")


def stage_config(
    config: SAEStageConfig | int | None,
    fields: Mapping[str, Any],
    n_latents_default: int = 64,
    what: str = "the SAE stage",
) -> SAEStageConfig:
    """The config a selection function runs with: ``config`` (an :class:`SAEStageConfig`, or the
    number of latents as the functions' positional argument), updated by keyword ``fields``
    (``k`` is ``n_latents``' deprecated name); the function's own default number of latents
    applies when neither gives one."""
    fields = dict(fields)
    if "k" in fields:
        fields["n_latents"] = renamed_keyword("k", "n_latents", fields.pop("k"), fields.get("n_latents"), None, 4)
    if isinstance(config, SAEStageConfig):
        return config.replaced(fields, what)
    if config is not None:
        if "n_latents" in fields:
            raise TypeError(f"n_latents given twice ({config!r} and n_latents={fields['n_latents']!r}).")
        if isinstance(config, bool) or not isinstance(config, int):
            raise TypeError(f"{config!r}: pass an SAEStageConfig or the number of latents (an int).")
        fields["n_latents"] = config
    return SAEStageConfig(n_latents=n_latents_default).replaced(fields, what)
