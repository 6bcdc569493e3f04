"""SAE interventions: unlearning that changes no weight, only one layer's activation, through its SAE.

An :class:`SAEIntervention` sits at one hook (the selected layer's residual stream). On every
forward pass (``logits``, ``generate``, captures, the attacks' fine-tuning) it encodes the
activation ``x`` with the layer's SAE into latents ``f``, rewrites the chosen latents into
``f'``, and adds back the difference of the decodings::

    x' = x + decode(f') - decode(f)        (= decode(f') + the SAE's reconstruction error)

so tokens where nothing is rewritten keep their exact activation, SAE error included. ``f`` is the
code of the activation as the SAE was trained on it (:mod:`sae_unlearn.saes.inputs`: centred per
token for an SAE trained on TransformerLens's centred writing weights; the difference of decodings is
added to the activation as it is, whose mean the next LayerNorm removes either way). The first
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

The rewrite itself (rules, edit mask, DSG's carried counts) is :mod:`sae_unlearn.intervention_runtime`,
a pure-torch module that intervention exports ship beside their weights, so that plain
``transformers`` (``trust_remote_code=True``) runs the same code; this class adds the sae-lens SAE
and the TransformerLens hook.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor

from sae_unlearn.intervention_runtime import (  # RULES: re-exported, the rules InterventionRule lists
    INTERVENTION_DIR,  # noqa: F401 - re-exported (export writes there)
    RULES,  # noqa: F401
    SAE_WEIGHTS_FILE,
    SPEC_FILE,
    LatentRewrite,
    check_spec_against_sae,
    check_weights_file,
    read_sae_cfg,
    read_spec,
    sae_folder,
)
from sae_unlearn.models.hooks import HookNameError
from sae_unlearn.models.loading import (
    HookedModel,
    load_model,  # noqa: F401 - re-exported: sae_unlearn.load_model (installs saved interventions)
    register_intervention_installer,
)
from sae_unlearn.saes.inputs import SAECodec, warn_intervention_inputs
from sae_unlearn.saes.loading import check_sae_fits

InterventionRule = Literal["zero", "scale", "clamp", "dsg"]
INTERVENTION_JSON = SPEC_FILE


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
        # the rule, the checks and the per-pass bookkeeping live in the pure-torch runtime that
        # exported models ship too (one implementation for the toolkit and plain transformers)
        self._rewrite = LatentRewrite(self.rule, self.latents, self.values, self.threshold, int(self.sae.cfg.d_sae))
        self.latents, self.values = self._rewrite.latents, self._rewrite.values
        self._handles: list[Any] = []

    # ------------------------------------------------------------------ the rewrite
    def fires(self, f: Float[Tensor, "... d_sae"]) -> Tensor:
        """Where any chosen latent fires (``... ``-shaped bool)."""
        return self._rewrite.fires(f)

    def rewrite(self, f: Float[Tensor, "batch pos d_sae"], edit: Tensor) -> Float[Tensor, "batch pos d_sae"]:
        """``f'``: the chosen latents rewritten by the rule at positions where ``edit`` is true."""
        return self._rewrite.rewrite(f, edit)

    def edit_mask(self, f: Float[Tensor, "batch pos d_sae"]) -> Tensor:
        """Which positions are rewritten: every real token but a text's first, and for ``dsg`` only
        flagged tokens where a chosen latent fires (the counts carried across KV-cache steps)."""
        return self._rewrite.edit_mask(f)

    def __call__(self, act: Float[Tensor, "batch pos d_model"], hook: object = None) -> Tensor:  # noqa: ARG002
        """The hook function: ``x + decode(f') - decode(f)``, ``f`` the code of ``x`` prepared as the
        SAE was trained on it (:class:`~sae_unlearn.saes.inputs.SAECodec`, which also keeps sae-lens's
        per-token normalisation from the encode to both decodes)."""
        # the SAE sits on the model's first device; with device_map the layer may be on another
        x = act.to(self.sae.W_dec.device, self.sae.W_dec.dtype)
        codec = SAECodec(self.sae, self.hook)
        out = self._rewrite.apply(x, codec.encode, codec.decode)
        return act if out is None else out.to(act.device, act.dtype)

    # ------------------------------------------------------------------ install
    def prepare(self, model) -> None:
        """Check the SAE against ``model`` before it is installed there (hook exists, SAE trained
        there, width matches; metadata read against the model, what cannot be honoured warns) and
        move it to the model's device, frozen (fine-tuning attacks train the model, never the SAE).
        :meth:`HookedModel.set_intervention <sae_unlearn.models.loading.HookedModel.set_intervention>`
        calls it, so the model layer needs nothing from :mod:`sae_unlearn.saes`."""
        check_sae_fits(model, self.sae, self.hook)
        warn_intervention_inputs(model, self.sae, self.hook)
        self.sae.to(model.device)
        self.sae.requires_grad_(False)

    def install(self, model) -> None:
        """Attach to ``model`` (a :class:`~sae_unlearn.models.loading.HookedModel`) for every forward
        pass until :meth:`remove`; hooks added later (captures) see the edited activation."""
        point = model.bridge.hook_dict[self.hook]
        point.add_hook(self, dir="fwd", is_permanent=True)
        self._handles.append(("point", point))

        def keep_call(module, args, kwargs):  # noqa: ARG001 - forward pre-hook signature
            self._rewrite.note_call(kwargs)

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
        self._rewrite.reset()

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
        """Read an intervention written by :meth:`save`; a damaged, mismatched or not self-contained
        one (its ``"sae"`` entry leading outside ``folder``) raises naming the file and the fix."""
        folder = Path(folder)
        spec = read_spec(folder)
        sae_dir = sae_folder(folder, spec)
        check_spec_against_sae(spec, read_sae_cfg(sae_dir), folder / INTERVENTION_JSON)
        check_weights_file(sae_dir / SAE_WEIGHTS_FILE)
        sae = SAE.load_from_disk(str(sae_dir), device=str(device))
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


def install_saved_intervention(model: HookedModel, folder: Path) -> None:
    """Install the intervention saved in ``folder`` (an exported model's ``intervention/``) on
    ``model``: what :func:`~sae_unlearn.models.loading.load_model` calls for such a model."""
    loaded = SAEIntervention.load(folder, device=model.device)
    try:
        model.validate_hooks([loaded.hook])
    except HookNameError as e:
        raise HookNameError(f"{folder / INTERVENTION_JSON} names a hook this model lacks: {e}") from None
    model.set_intervention(loaded)


register_intervention_installer(install_saved_intervention)
