"""Pretrained SAEs for the pipeline: use given SAEs instead of fitting them.

:func:`load_saes` turns what a user has into ``{hook: SAE}``, each SAE a sae-lens object:

- a folder written by :func:`~sae_unlearn.saes.fit_saes` (``fit.json`` and one SAE per hook);
- a sae-lens SAE folder (``cfg.json`` + weights), or a folder holding several;
- a Gemma Scope folder (``params.npz`` with ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``,
  ``threshold``: a JumpReLU SAE), its hook read from a ``layer_{L}`` part of the path;
- ``"release:sae_id"`` from sae-lens's pretrained registry (``gpt2-small-res-jb:blocks.8.hook_resid_pre``,
  ``gemma-scope-2b-pt-res-canonical:layer_12/width_16k/canonical``), which needs the hub. The pair is
  checked against sae-lens's bundled registry first, offline, and a miss names the close matches.

The SAE stage (:func:`sae_unlearn.pipeline.sae_stage`) then captures only the SAEs' hooks and
selects among their layers.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import numpy as np
import torch
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from sae_lens.saes.sae import SAEMetadata

from sae_unlearn.atomic import read_json

GEMMA_SCOPE_FILE = "params.npz"
_GEMMA_SCOPE_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def check_pretrained_id(release: str, sae_id: str) -> None:
    """Raise ``ValueError`` naming the close matches when ``(release, sae_id)`` is not in sae-lens's
    bundled ``pretrained_saes.yaml`` (checked offline, before any download)."""
    directory = get_pretrained_saes_directory()
    if release not in directory:
        close = difflib.get_close_matches(release, list(directory), n=5, cutoff=0.5)
        raise ValueError(
            f"SAE release {release!r} is not in sae-lens's pretrained registry; "
            + (
                f"close matches: {close}."
                if close
                else f"it lists {len(directory)} releases (sae_lens.pretrained_saes)."
            )
        )
    ids = list(directory[release].saes_map)
    if sae_id not in ids:
        close = difflib.get_close_matches(sae_id, ids, n=5, cutoff=0.5)
        raise ValueError(
            f"SAE id {sae_id!r} is not in release {release!r}; "
            + (f"close matches: {close}." if close else f"e.g. {ids[:5]}.")
        )


def load_gemma_scope_folder(folder: str | os.PathLike, hook: str | None = None, device: str = "cpu") -> SAE:
    """A JumpReLU SAE from a Gemma Scope folder (``params.npz``), as sae-lens's own Gemma Scope
    loader converts it: weights as stored (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``),
    ReLU then the threshold mask, no input centring by ``b_dec``.

    ``hook`` defaults to ``blocks.{L}.hook_resid_post`` from a ``layer_{L}`` part of the path.
    """
    folder = Path(folder)
    path = folder / GEMMA_SCOPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {GEMMA_SCOPE_FILE}; it is not a Gemma Scope SAE folder.")
    if hook is None:
        layers = re.findall(r"layer_(\d+)", str(folder))
        if not layers:
            raise ValueError(f"cannot tell the hook of {folder} (no layer_N in its path); pass hook=...")
        hook = f"blocks.{layers[-1]}.hook_resid_post"
    with np.load(path) as data:
        missing = [k for k in _GEMMA_SCOPE_KEYS if k not in data]
        if missing:
            raise ValueError(f"{path} lacks {missing}; a Gemma Scope SAE has {list(_GEMMA_SCOPE_KEYS)}.")
        state = {k: torch.tensor(data[k], dtype=torch.float32) for k in _GEMMA_SCOPE_KEYS}
    d_in, d_sae = state["W_enc"].shape
    if tuple(state["W_dec"].shape) != (d_sae, d_in):
        raise ValueError(f"{path}: W_dec has shape {tuple(state['W_dec'].shape)}, expected ({d_sae}, {d_in}).")
    cfg = JumpReLUSAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        device=device,
        apply_b_dec_to_input=False,
        metadata=SAEMetadata(hook_name=hook, model_name=None, prepend_bos=True),
    )
    sae = JumpReLUSAE(cfg)
    sae.load_state_dict({k: v.to(device) for k, v in state.items()})
    return sae


def load_saes(source: str | os.PathLike, hook: str | None = None, device: str = "cpu") -> dict[str, SAE]:
    """Pretrained SAEs as ``{hook: SAE}`` from a folder or ``"release:sae_id"`` (see the module docstring).

    Args:
        source: a folder (fit_saes output, sae-lens SAE folder(s), Gemma Scope folder) or
            ``"release:sae_id"`` of sae-lens's registry (online).
        hook: the hook of a single SAE whose folder does not say it (Gemma Scope outside a
            ``layer_N`` path), or to check a registry SAE against.
        device: where the SAEs live.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "fit.json").is_file():
            from sae_unlearn.saes.training import load_fitted_saes

            return load_fitted_saes(path, device=device).saes
        if (path / GEMMA_SCOPE_FILE).is_file():
            sae = load_gemma_scope_folder(path, hook, device)
            return {sae.cfg.metadata.hook_name: sae}
        folders = (
            [path] if (path / "cfg.json").is_file() else sorted(p for p in path.iterdir() if (p / "cfg.json").is_file())
        )
        if not folders:
            raise FileNotFoundError(
                f"{path} holds no SAEs: no fit.json, cfg.json (sae-lens) or {GEMMA_SCOPE_FILE} (Gemma Scope), "
                "and no sub-folder with a cfg.json."
            )
        out: dict[str, SAE] = {}
        for f in folders:
            sae = SAE.load_from_disk(f, device=device)
            name = getattr(sae.cfg.metadata, "hook_name", None) or read_json(f / "cfg.json", "SAE config").get(
                "hook_name"
            )
            if not name:
                raise ValueError(f"the SAE in {f} records no hook_name; load it with load_sae(..., hook=...).")
            if name in out:
                raise ValueError(f"two SAEs in {path} are for {name!r}; keep one per hook.")
            out[name] = sae
        return out
    text = str(source)
    if ":" not in text:
        raise FileNotFoundError(
            f"SAE source {text!r} is neither a folder nor 'release:sae_id' "
            "(e.g. 'gpt2-small-res-jb:blocks.8.hook_resid_pre')."
        )
    release, sae_id = text.split(":", 1)
    check_pretrained_id(release, sae_id)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(
            f"pretrained SAE {release}:{sae_id} must be downloaded from the Hugging Face hub, but HF_HUB_OFFLINE=1; "
            "download it once online, or pass a folder."
        )
    sae = SAE.from_pretrained(release, sae_id, device=device)
    name = getattr(sae.cfg.metadata, "hook_name", None) or hook
    if name is None:
        raise ValueError(f"{release}:{sae_id} records no hook_name; pass hook=...")
    return {name: sae}
