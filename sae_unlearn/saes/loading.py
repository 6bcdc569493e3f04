"""Load SAEs from disk or by sae-lens release/id, checked against the model they will be used on.

An SAE fits a model only at the hook it was trained on and only if its input width equals the
activation width there. :func:`check_sae_fits` raises a clear error otherwise, naming both.
"""

from __future__ import annotations

import os
from pathlib import Path

from sae_lens import SAE

from sae_unlearn.capture.capture import run_and_capture
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.saes.inputs import check_sae_inputs


class SAEMismatchError(ValueError):
    """An SAE whose hook or width does not match the model."""


def sae_hook_name(sae: SAE) -> str | None:
    """The hook an SAE was trained on, from its sae-lens metadata."""
    return getattr(sae.cfg.metadata, "hook_name", None)


def check_sae_matches(sae: SAE, hook: str, d_in: int, model_name: str | None = None) -> None:
    """Check an SAE against a site without a model: its recorded hook (if any) is ``hook``, its
    input width is ``d_in``, and its recorded model (if both are known) is ``model_name``.

    Raises :class:`SAEMismatchError` naming both sides and the fix.
    """
    own = sae_hook_name(sae)
    if own is not None and own != hook:
        raise SAEMismatchError(
            f"the SAE given for {hook!r} was trained on {own!r}; pass the SAE trained on {hook!r} "
            "(keys of the SAE dict are hook names)."
        )
    if sae.cfg.d_in != d_in:
        raise SAEMismatchError(
            f"the SAE for {hook!r} expects d_in={sae.cfg.d_in} but the activations there are {d_in} wide; "
            f"use an SAE trained on this model (d_in={d_in})."
        )
    own_model = getattr(sae.cfg.metadata, "model_name", None)
    if model_name and own_model and own_model != model_name:
        raise SAEMismatchError(
            f"the SAE for {hook!r} was trained on model {own_model!r}, not {model_name!r}; "
            "use an SAE fitted on this model."
        )


def check_sae_fits(model: HookedModel, sae: SAE, hook: str | None = None) -> str:
    """Check ``sae`` can be used at ``hook`` (default: its own metadata hook); return the hook.

    Its metadata is read against the model too (:func:`~sae_unlearn.saes.inputs.check_sae_inputs`):
    what cannot be honoured warns."""
    own = sae_hook_name(sae)
    hook = hook or own
    if hook is None:
        raise SAEMismatchError("the SAE records no hook_name; pass hook='blocks.L.hook_resid_post' explicitly.")
    model.validate_hooks([hook])
    if own is not None and hook != own:
        raise SAEMismatchError(
            f"the SAE was trained on {own!r} but is asked to run at {hook!r}; use an SAE trained on {hook!r} "
            "or pass its own hook."
        )
    probe = model.tokenize("hello").input_ids
    width = int(run_and_capture(model, probe, [hook])[hook].shape[-1])
    if sae.cfg.d_in != width:
        raise SAEMismatchError(
            f"SAE width d_in={sae.cfg.d_in} does not match the activation width {width} at {hook!r} of "
            f"{model.source!r}; load an SAE trained on this model (d_in={width})."
        )
    check_sae_inputs(model, sae, hook)
    return hook


def load_sae(
    source: str | os.PathLike,
    sae_id: str | None = None,
    model: HookedModel | None = None,
    hook: str | None = None,
    device: str = "cpu",
) -> SAE:
    """Load one SAE: a sae-lens folder on disk, or ``(release, sae_id)`` from the hub (online).

    With ``model`` given, the SAE is checked to fit it (hook name and width).
    """
    path = Path(source)
    if path.exists():
        if not (path / "cfg.json").is_file():
            raise FileNotFoundError(f"{path} is not a sae-lens SAE folder (no cfg.json).")
        sae = SAE.load_from_disk(path, device=device)
    elif sae_id is not None:
        from sae_unlearn.saes.pretrained import check_pretrained_id

        check_pretrained_id(str(source), sae_id)
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(
                f"pretrained SAE {source!r}/{sae_id!r} needs the hub but HF_HUB_OFFLINE=1; load one from disk."
            )
        sae = SAE.from_pretrained(str(source), sae_id, device=device)
    else:
        raise FileNotFoundError(
            f"{source!r} is not a folder; pass a sae-lens SAE folder, or a release name together with sae_id."
        )
    if model is not None:
        check_sae_fits(model, sae, hook)
    return sae
