"""Pretrained SAEs for the pipeline: use given SAEs instead of fitting them.

:func:`load_saes` turns what a user has into ``{hook: SAE}``, each SAE a sae-lens object:

- a folder written by :func:`~sae_unlearn.saes.fit_saes` (``fit.json`` and one SAE per hook);
- a sae-lens SAE folder (``cfg.json`` + weights), or a folder holding several;
- a Gemma Scope folder (``params.npz`` with ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``,
  ``threshold``: a JumpReLU SAE), its hook read from a ``layer_{L}`` part of the path;
- a Llama Scope folder (``hyperparams.json`` + ``checkpoints/final.safetensors``, as
  ``fnlp/Llama3_1-8B-Base-LXR-8x`` stores each layer's SAE), or a folder holding several: a JumpReLU
  SAE converted as sae-lens converts it (:func:`load_llama_scope_folder`);
- ``"release:sae_id"`` from sae-lens's pretrained registry (``gpt2-small-res-jb:blocks.8.hook_resid_pre``,
  ``gemma-scope-2b-pt-res-canonical:layer_12/width_16k/canonical``), which needs the hub. The pair is
  checked against sae-lens's bundled registry first, offline, and a miss names the close matches.

The SAE stage (:func:`sae_unlearn.pipeline.sae_stage`) then captures only the SAEs' hooks and
selects among their layers.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from sae_lens.saes.sae import SAEMetadata
from safetensors.torch import load_file

from sae_unlearn.atomic import read_json

GEMMA_SCOPE_FILE = "params.npz"
_GEMMA_SCOPE_KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
LLAMA_SCOPE_CONFIG = "hyperparams.json"
LLAMA_SCOPE_WEIGHTS = "checkpoints/final.safetensors"
_LLAMA_SCOPE_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias")
#: Llama Scope's site letter (``…-L15R-8x``) and the hook it names (its ``HOOK_SUFFIX``).
LLAMA_SCOPE_SITES = {"R": "hook_resid_post", "A": "hook_attn_out", "M": "hook_mlp_out"}


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


def is_llama_scope_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds one Llama Scope SAE (``hyperparams.json`` and ``checkpoints/final.safetensors``)."""
    return (Path(folder) / LLAMA_SCOPE_CONFIG).is_file() and (Path(folder) / LLAMA_SCOPE_WEIGHTS).is_file()


def load_llama_scope_folder(folder: str | os.PathLike, hook: str | None = None, device: str = "cpu") -> SAE:
    """A JumpReLU SAE from a Llama Scope folder (``Llama3_1-8B-Base-L15R-8x/`` of the hub's
    ``fnlp/Llama3_1-8B-Base-LXR-8x``: ``hyperparams.json``, ``checkpoints/final.safetensors``), as
    sae-lens's ``llama_scope`` conversion and ``SAE.from_pretrained`` make it, so that a local copy
    gives the registry's SAE (``llama_scope_lxr_8x:l15r_8x``):

    - ``encoder.weight [d_sae, d_model]`` and ``decoder.weight [d_model, d_sae]`` (``nn.Linear``
      layout) transposed to ``W_enc [d_in, d_sae]`` and ``W_dec [d_sae, d_in]``; float32.
    - Llama Scope trained on activations scaled to an average norm of ``sqrt(d_model)``
      (``norm_activation = "dataset-wise"``, with the corpus's ``dataset_average_activation_norm``
      ``in``/``out``). The factors ``s = sqrt(d_model) / norm`` are folded into the weights
      (``W_enc * s_in``; ``W_dec``, ``b_dec`` ``/ s_out``), so raw activations go in and come out,
      and ``normalize_activations`` is ``"none"`` (as after sae-lens's fold).
    - One ``jump_relu_threshold`` for every latent, multiplied by ``s_in`` as sae-lens does
      (its fix for Llama Scope's L0, SAELens PR #483).
    - ``b_dec`` is subtracted before encoding only if ``apply_decoder_bias_to_pre_encoder``.

    ``hook`` defaults to the file's ``hook_point_in`` (``blocks.15.hook_resid_post``), else to the
    site of an ``L{L}{R|A|M}`` part of the folder's name. The metadata records what sae-lens's does
    (Llama-3.1-8B, BOS, 1024-token contexts of SlimPajama) and the file's own settings under
    ``llama_scope``.
    """
    folder = Path(folder)
    if not is_llama_scope_folder(folder):
        raise FileNotFoundError(
            f"{folder} holds no {LLAMA_SCOPE_CONFIG} and {LLAMA_SCOPE_WEIGHTS}; it is not a Llama Scope SAE folder."
        )
    where = folder / LLAMA_SCOPE_CONFIG
    hp = read_json(where, "Llama Scope hyperparameters")
    lacking = [k for k in ("d_model", "d_sae", "jump_relu_threshold") if k not in hp]
    if lacking:
        raise ValueError(f"{where} lacks {lacking}; it is not a Llama Scope JumpReLU SAE's hyperparams.json.")
    for key, supported in (("act_fn", "jumprelu"), ("norm_activation", "dataset-wise"), ("use_glu_encoder", False)):
        if hp.get(key, supported) != supported:
            raise ValueError(f"{where}: {key}={hp[key]!r}; the Llama Scope loader reads {key}={supported!r} SAEs only.")
    norms = hp.get("dataset_average_activation_norm") or {}
    if not all(isinstance(norms.get(k), (int, float)) and norms[k] > 0 for k in ("in", "out")):
        raise ValueError(f"{where}: dataset_average_activation_norm={norms!r}; it needs positive 'in' and 'out'.")
    d_in, d_sae = int(hp["d_model"]), int(hp["d_sae"])
    s_in, s_out = math.sqrt(d_in) / norms["in"], math.sqrt(d_in) / norms["out"]
    centre = bool(hp.get("apply_decoder_bias_to_pre_encoder", False))
    if centre and not math.isclose(s_in, s_out):
        raise ValueError(
            f"{where}: apply_decoder_bias_to_pre_encoder with in and out norms that differ cannot be folded."
        )
    if hook is None:
        hook = hp.get("hook_point_in")
    if hook is None:
        site = re.findall(r"L(\d+)([RAM])-\d+x", folder.name)
        if not site:
            raise ValueError(
                f"cannot tell the hook of {folder} (no hook_point_in, no L{{N}}R in its name); pass hook=..."
            )
        hook = f"blocks.{site[-1][0]}.{LLAMA_SCOPE_SITES[site[-1][1]]}"
    raw = load_file(folder / LLAMA_SCOPE_WEIGHTS)
    missing = [k for k in _LLAMA_SCOPE_KEYS if k not in raw]
    if missing:
        raise ValueError(
            f"{folder / LLAMA_SCOPE_WEIGHTS} lacks {missing}; a Llama Scope SAE has {list(_LLAMA_SCOPE_KEYS)}."
        )
    state = {k: raw[k].to(torch.float32) for k in _LLAMA_SCOPE_KEYS}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    want = {
        "encoder.weight": (d_sae, d_in),
        "encoder.bias": (d_sae,),
        "decoder.weight": (d_in, d_sae),
        "decoder.bias": (d_in,),
    }
    if shapes != want:
        raise ValueError(f"{folder / LLAMA_SCOPE_WEIGHTS}: shapes {shapes}, but {where} says {want}.")
    threshold = float(hp["jump_relu_threshold"]) * s_in
    cfg = JumpReLUSAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        device=device,
        apply_b_dec_to_input=centre,
        normalize_activations="none",
        metadata=SAEMetadata(
            hook_name=hook,
            hook_head_index=None,
            model_name="meta-llama/Llama-3.1-8B",
            prepend_bos=True,
            context_size=1024,
            dataset_path="cerebras/SlimPajama-627B",
            sae_lens_training_version=None,
            llama_scope={
                "norm_activation": "dataset-wise",
                "dataset_average_activation_norm": {"in": norms["in"], "out": norms["out"]},
                "folded_norm_scaling_factor": {"in": s_in, "out": s_out},
                "jump_relu_threshold": float(hp["jump_relu_threshold"]),
            },
        ),
    )
    sae = JumpReLUSAE(cfg)
    sae.load_state_dict(
        {
            "W_enc": state["encoder.weight"].T.mul_(s_in),  # in place: a 32x SAE has 2 GB matrices
            "W_dec": state["decoder.weight"].T.div_(s_out),
            "b_enc": state["encoder.bias"],
            "b_dec": state["decoder.bias"].div_(s_out),
            "threshold": torch.full((d_sae,), threshold),
        }
    )
    return sae.to(device)


def load_saes(source: str | os.PathLike, hook: str | None = None, device: str = "cpu") -> dict[str, SAE]:
    """Pretrained SAEs as ``{hook: SAE}`` from a folder or ``"release:sae_id"`` (see the module docstring).

    Args:
        source: a folder (fit_saes output, sae-lens SAE folder(s), Gemma Scope folder, Llama Scope
            folder(s)) or ``"release:sae_id"`` of sae-lens's registry (online).
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
        scope = [path] if is_llama_scope_folder(path) else sorted(p for p in path.iterdir() if is_llama_scope_folder(p))
        if scope:
            saes = [load_llama_scope_folder(p, hook if len(scope) == 1 else None, device) for p in scope]
            by_hook = {sae.cfg.metadata.hook_name: sae for sae in saes}
            if len(by_hook) < len(saes):
                raise ValueError(f"two Llama Scope SAEs in {path} are for the same hook; keep one per hook.")
            return by_hook
        folders = (
            [path] if (path / "cfg.json").is_file() else sorted(p for p in path.iterdir() if (p / "cfg.json").is_file())
        )
        if not folders:
            raise FileNotFoundError(
                f"{path} holds no SAEs: no fit.json, cfg.json (sae-lens), {GEMMA_SCOPE_FILE} (Gemma Scope) or "
                f"{LLAMA_SCOPE_CONFIG} (Llama Scope), and no sub-folder with a cfg.json or {LLAMA_SCOPE_CONFIG}."
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
