"""SAE interventions: unlearning that changes no weight, only one layer's activation, through its SAE.

An :class:`SAEIntervention` sits at one hook (the selected layer's residual stream). On every
forward pass (``logits``, ``generate``, captures, the attacks' fine-tuning) it encodes the
activation ``x`` with the layer's SAE into latents ``f``, rewrites the chosen latents into
``f'``, and adds back the difference of the decodings::

    x' = x + decode(f') - decode(f)        (= decode(f') + the SAE's reconstruction error)

so tokens where nothing is rewritten keep their exact activation, SAE error included. The first
real token of each text (BOS) is never rewritten, as in SAEBench and DSG. The rules:

- ``zero``: ``f'_i = 0`` — zero-ablation, the control of Farrell et al. 2024;
- ``scale``: ``f'_i = -c · f_i`` — negative scaling of the latents wherever they fire
  ("static clamping", Farrell et al. 2024, "Applying sparse autoencoders to unlearn knowledge
  in language models");
- ``clamp``: ``f'_i = -v_i`` where ``f_i > 0``, else unchanged — conditional clamping to a fixed
  negative value (SAEBench's unlearning intervention; "Clamp Prime" of Khoriaty et al. 2025);
- ``dsg``: Dynamic SAE Guardrails (Muhamed et al. 2025): a token is *flagged* when the share of
  the text so far (first real token excluded) at which any chosen latent fires exceeds
  ``threshold`` (set to a percentile of that share on retain texts); at flagged tokens where any
  chosen latent fires, **all** chosen latents are set to ``-v_i``.

DSG's published code classifies whole sequences in one forward pass. Here the share is computed
causally, over each text's prefix, so that a token's edit depends only on the tokens before it:
the full text's decision at its last token is DSG's, and generation with a KV cache (one new
token per forward pass) gives exactly what generation without one gives: the running counts are
carried from one pass to the next (a pass with a non-empty KV cache continues the last one), and
left padding is skipped (``generate`` numbers each text's real tokens from 0; other calls may
pass an attention mask, else every position is a real token, right padding being harmless to
a causal rule).

Values ``v_i`` are ``multiplier ×`` the latent's mean activation on forget tokens where it fires,
so one multiplier means the same on every model; SAEBench's and DSG's multipliers (25-500) are
absolute, in the units of Gemma Scope's SAEs. An intervention is saved beside a model's weights
(:meth:`SAEIntervention.save`: the SAE in sae-lens's disk format plus ``intervention.json``) and
:func:`~sae_unlearn.models.loading.load_model` re-activates it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.atomic import read_json

InterventionRule = Literal["zero", "scale", "clamp", "dsg"]
RULES: tuple[str, ...] = get_args(InterventionRule)
INTERVENTION_DIR = "intervention"
"""Where an exported model keeps its intervention (``intervention.json`` and ``sae/``)."""
INTERVENTION_JSON = "intervention.json"


@dataclass
class SAEIntervention:
    """A rewrite of chosen SAE latents at one hook, applied on every forward pass once installed.

    Attributes:
        hook: the hook it acts at (the SAE's site).
        sae: the SAE that encodes and decodes there.
        rule: ``"zero"``, ``"scale"``, ``"clamp"`` or ``"dsg"`` (module docstring).
        latents: the rewritten latents.
        values: per latent, the magnitude ``v_i`` of the negative clamp (``clamp``, ``dsg``) or the
            scaling ``c`` (``scale``); unused by ``zero``.
        threshold: ``dsg`` only: the share of firing tokens above which a prefix is flagged.
        method: the registered method that built it (for cards and reports).
        info: facts recorded with it (multiplier, percentile, scores, …).
    """

    hook: str
    sae: SAE
    rule: InterventionRule
    latents: list[int]
    values: list[float]
    threshold: float | None = None
    method: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r}; choose one of {RULES}.")
        if isinstance(self.latents, int | str) or not self.latents:
            raise ValueError(f"latents={self.latents!r} must be a non-empty list of latent indices.")
        self.latents = [int(i) for i in self.latents]
        d_sae = int(self.sae.cfg.d_sae)
        bad = [i for i in self.latents if not 0 <= i < d_sae]
        if bad or len(set(self.latents)) != len(self.latents):
            raise ValueError(
                f"latents {bad or self.latents} are out of range or repeated; the SAE has d_sae={d_sae} latents."
            )
        self.values = [float(v) for v in self.values]
        if len(self.values) != len(self.latents):
            raise ValueError(f"{len(self.values)} values for {len(self.latents)} latents; give one per latent.")
        if any(not torch.isfinite(torch.tensor(v)) or v < 0 for v in self.values):
            raise ValueError(f"values={self.values[:6]} must be finite and >= 0 (magnitudes of the negative edit).")
        if self.rule == "dsg" and (self.threshold is None or not 0 <= self.threshold < 1):
            raise ValueError(f"rule 'dsg' needs threshold in [0, 1) (a share of tokens), got {self.threshold!r}.")
        self._idx = torch.tensor(self.latents)
        self._val = torch.tensor(self.values, dtype=torch.float32)
        self._carry: tuple[Tensor, Tensor] | None = None
        self._call: dict = {}
        self._handles: list[Any] = []

    # ------------------------------------------------------------------ the rewrite
    def fires(self, f: Float[Tensor, "... d_sae"]) -> Tensor:
        """Where any chosen latent fires (``... ``-shaped bool)."""
        return (f[..., self._idx.to(f.device)] > 0).any(-1)

    def rewrite(self, f: Float[Tensor, "batch pos d_sae"], edit: Tensor) -> Float[Tensor, "batch pos d_sae"]:
        """``f'``: the chosen latents rewritten by the rule at positions where ``edit`` is true."""
        idx, val = self._idx.to(f.device), self._val.to(f.device, f.dtype)
        sel = f[..., idx]
        if self.rule == "zero":
            new = torch.zeros_like(sel)
        elif self.rule == "scale":
            new = -val * sel
        elif self.rule == "clamp":
            new = torch.where(sel > 0, -val.expand_as(sel), sel)
        else:  # dsg: every chosen latent at flagged tokens where any of them fires
            new = -val.expand_as(sel)
        new = torch.where(edit[..., None], new, sel)
        out = f.clone()
        out[..., idx] = new
        return out

    def edit_mask(self, f: Float[Tensor, "batch pos d_sae"]) -> Tensor:
        """Which positions are rewritten: every real token but a text's first, and for ``dsg`` only
        flagged tokens where a chosen latent fires (the counts carried across KV-cache steps)."""
        batch, pos = f.shape[:2]
        call, self._call = self._call, {}  # one forward pass, one hook call: never reuse a stale call
        position_ids, mask = call.get("position_ids"), call.get("attention_mask")
        # a KV-cache step (generate after its first pass) continues the texts of the last pass
        carry = self._carry if call.get("past", 0) > 0 and self._carry and self._carry[0].shape[0] == batch else None
        hits0, n0 = (c.to(f.device) for c in carry) if carry else (torch.zeros(batch, device=f.device),) * 2
        if carry is not None:
            real = torch.ones(batch, pos, dtype=torch.bool, device=f.device)
            first = torch.zeros_like(real)
        elif position_ids is not None and tuple(position_ids.shape[-2:]) == (batch, pos):
            # generate numbers real tokens from 0 and gives left padding position 1
            first = position_ids.to(f.device) == 0
            real = first.long().cumsum(1) > 0
        else:
            real = (
                mask.to(f.device).bool()
                if mask is not None and tuple(mask.shape) == (batch, pos)
                else torch.ones(batch, pos, dtype=torch.bool, device=f.device)
            )
            first = real & (real.long().cumsum(1) == 1)
        counted = real & ~first  # a text's first token (BOS) is never rewritten
        fire = self.fires(f) & counted if self.rule == "dsg" else counted
        hits = hits0[:, None] + fire.float().cumsum(1)
        n = n0[:, None] + counted.float().cumsum(1)
        self._carry = (hits[:, -1].detach(), n[:, -1].detach())
        if self.rule != "dsg":
            return counted
        return fire & (hits / n.clamp_min(1.0) > float(self.threshold or 0.0))

    def __call__(self, act: Float[Tensor, "batch pos d_model"], hook: object = None) -> Tensor:  # noqa: ARG002
        """The hook function: ``x + decode(f') - decode(f)``."""
        # the SAE sits on the model's first device; with device_map the layer may be on another
        x = act.to(self.sae.W_dec.device, self.sae.W_dec.dtype)
        f = self.sae.encode(x)
        edit = self.edit_mask(f)
        if not bool(edit.any()):
            return act
        delta = self.sae.decode(self.rewrite(f, edit)) - self.sae.decode(f)
        return (x + delta).to(act.device, act.dtype)

    # ------------------------------------------------------------------ install
    def install(self, model) -> None:
        """Attach to ``model`` (a :class:`~sae_unlearn.models.loading.HookedModel`) for every forward
        pass until :meth:`remove`; hooks added later (captures) see the edited activation."""
        point = model.bridge.hook_dict[self.hook]
        point.add_hook(self, dir="fwd", is_permanent=True)
        self._handles.append(("point", point))

        def keep_call(module, args, kwargs):  # noqa: ARG001 - forward pre-hook signature
            cache = kwargs.get("past_key_values")
            past = int(cache.get_seq_length()) if hasattr(cache, "get_seq_length") else 0
            mask = kwargs.get("attention_mask")
            self._call = {
                "position_ids": kwargs.get("position_ids"),
                "attention_mask": mask if isinstance(mask, Tensor) and mask.dim() == 2 else None,
                "past": past,
            }

        self._handles.append(("pre", model.hf_model.register_forward_pre_hook(keep_call, with_kwargs=True)))

    def remove(self) -> None:
        """Detach from the model it was installed on."""
        for kind, h in self._handles:
            if kind == "pre":
                h.remove()
                continue
            for lens in list(h.fwd_hooks):
                if getattr(lens, "user_hook", None) is self:
                    lens.hook.remove()
                    h.fwd_hooks.remove(lens)
        self._handles = []
        self._carry, self._call = None, {}

    # ------------------------------------------------------------------ disk
    def to_dict(self) -> dict:
        """Everything but the SAE's weights (``intervention.json``)."""
        return {
            "hook": self.hook,
            "rule": self.rule,
            "latents": self.latents,
            "values": self.values,
            "threshold": self.threshold,
            "method": self.method,
            "info": self.info,
            "sae": "sae",
            "d_sae": int(self.sae.cfg.d_sae),
            "d_in": int(self.sae.cfg.d_in),
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``intervention.json`` and the SAE (sae-lens's disk format) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.sae.save_model(folder / "sae")
        (folder / INTERVENTION_JSON).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> SAEIntervention:
        """Read an intervention written by :meth:`save`; a damaged or mismatched one raises naming the file."""
        folder = Path(folder)
        spec = read_json(folder / INTERVENTION_JSON)
        missing = [k for k in ("hook", "rule", "latents", "values") if k not in spec]
        if missing:
            raise ValueError(f"{folder / INTERVENTION_JSON} lacks {missing}; export the model again.")
        sae = SAE.load_from_disk(str(folder / spec.get("sae", "sae")), device=str(device))
        if int(sae.cfg.d_sae) != int(spec.get("d_sae", sae.cfg.d_sae)):
            raise ValueError(
                f"{folder}: the saved SAE has d_sae={sae.cfg.d_sae}, intervention.json says {spec['d_sae']}."
            )
        return cls(
            hook=spec["hook"],
            sae=sae,
            rule=spec["rule"],
            latents=spec["latents"],
            values=spec["values"],
            threshold=spec.get("threshold"),
            method=spec.get("method", ""),
            info=spec.get("info", {}),
        )


@contextlib.contextmanager
def intervention_off(model) -> Iterator[Any]:
    """Run ``model`` without its intervention (what the base weights alone know); re-installed on exit."""
    iv = getattr(model, "intervention", None)
    if iv is None:
        yield model
        return
    iv.remove()
    try:
        yield model
    finally:
        iv.install(model)
