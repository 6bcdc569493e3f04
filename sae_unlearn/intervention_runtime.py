"""The pure-torch core of an SAE intervention, shared by the toolkit and by exported models.

This module is the one place where the latent rewrite of a weight-free unlearning method (SAE
clamping, DSG: :mod:`sae_unlearn.interventions` explains the rules) is written down. It imports
only torch, safetensors and the standard library, never ``sae_unlearn``, because it is used twice:

- by :class:`~sae_unlearn.interventions.SAEIntervention`, which encodes and decodes with the
  sae-lens SAE and hooks the model through TransformerLens's bridge;
- copied verbatim beside an intervention export's ``intervention_modeling.py``, which plain
  ``transformers`` runs (``trust_remote_code=True``) with the small SAE reader below
  (:class:`SparseCoder`: sae-lens's standard, JumpReLU and TopK encoders, nothing else).

It also holds what both loaders check about an export's ``intervention/`` folder (the JSON,
the SAE's site and width, a truncated weight file, an ``"sae"`` entry that leaves the folder)
and the ``config.json`` format of an intervention export (:func:`export_config`,
:func:`base_config_dict`), so that the writer and both readers cannot drift apart.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

RULES: tuple[str, ...] = ("zero", "scale", "clamp", "dsg")
"""The rewrite rules (``SAEIntervention``'s ``InterventionRule``)."""
SPEC_FILE = "intervention.json"
INTERVENTION_DIR = "intervention"
"""Where an exported model keeps its intervention (``intervention.json`` and ``sae/``)."""
SPEC_KEYS: tuple[str, ...] = ("hook", "rule", "latents", "values")
"""Keys every ``intervention.json`` must have."""
SAE_CFG_FILE = "cfg.json"
SAE_WEIGHTS_FILE = "sae_weights.safetensors"
SAE_ARCHITECTURES: tuple[str, ...] = ("standard", "jumprelu", "topk")
"""The sae-lens SAE architectures :class:`SparseCoder` reproduces (what the toolkit trains and loads)."""

CONFIG_KEY = "sae_unlearn"
"""The ``config.json`` entry of an intervention export: base model type and classes, layer list, hook."""
MODEL_TYPE_PREFIX = "sae_unlearn_"
MODELING_FILE = "intervention_modeling.py"
RUNTIME_FILE = "intervention_runtime.py"
AUTO_MAP = {
    "AutoConfig": "intervention_modeling.SAEUnlearnConfig",
    "AutoModelForCausalLM": "intervention_modeling.SAEUnlearnForCausalLM",
}
ARCHITECTURE = "SAEUnlearnForCausalLM"
"""``config.json``'s ``architectures`` of an export: a name no serving engine maps to the base model."""

_SITE = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")
RESIDUAL_WRITE_SITE = re.compile(
    r"^(hook_embed|hook_pos_embed|blocks\.\d+\.(hook_resid_(pre|mid|post)|hook_attn_out|hook_mlp_out|attn\.hook_result"
    r"|hook_attn_in|hook_mlp_in|hook_[qkv]_input))$"
)
"""Hooks on the residual stream (or a copy of it) or on a write into it (TransformerLens names): where
TransformerLens's centred writing weights give the plain model's activation minus its mean over ``d_model``."""


# ---------------------------------------------------------------------------------- checks
def check_latent_indices(latents: Any, d_sae: int | None, what: str = "latents") -> list[int]:
    """``latents`` as a list of distinct ints in ``[0, d_sae)`` (``d_sae=None``: any int >= 0, the
    SAE is not known yet); anything else raises ``ValueError`` naming the bad values. Floats such as
    ``1.7`` and bools are refused, never truncated."""
    valid = f"the SAE's latents are 0..{d_sae - 1} (d_sae={d_sae})" if d_sae is not None else "latents are ints >= 0"
    if isinstance(latents, str | bytes | int | float) or not isinstance(latents, Sequence | Tensor):
        raise ValueError(f"{what}={latents!r} must be a list of latent indices; {valid}.")
    out: list[int] = []
    for v in latents:
        is_bool = (
            isinstance(v, bool) or (isinstance(v, Tensor) and v.dtype == torch.bool) or type(v).__name__ == "bool_"
        )
        try:
            if is_bool:
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise ValueError(
                f"{what} holds {v!r} ({type(v).__name__}), not an integer latent index; {valid}. Pass ints."
            ) from None
    bad = [i for i in out if i < 0 or (d_sae is not None and i >= d_sae)]
    if bad or len(set(out)) != len(out):
        raise ValueError(f"{what} {bad[:6] or out[:6]} are out of range or repeated; {valid}, each used once.")
    return out


def parse_site(hook: str) -> tuple[int, str]:
    """``(layer, "post" | "pre")`` of a ``blocks.{l}.hook_resid_post`` / ``hook_resid_pre`` hook, the
    sites an exported model can serve (a decoder layer's output / input); other hooks raise."""
    m = _SITE.match(hook) if isinstance(hook, str) else None
    if not m:
        raise ValueError(
            f"hook {hook!r}: an intervention export can be served by plain transformers only at a residual "
            "stream site, blocks.{l}.hook_resid_post (a decoder layer's output) or blocks.{l}.hook_resid_pre "
            "(its input). Use an SAE trained at such a hook, or keep the model in the toolkit (load_model)."
        )
    return int(m.group(1)), m.group(2)


def find_layer_list(model: torch.nn.Module, n_layers: int) -> str:
    """The dotted path of ``model``'s decoder-layer list: the one ``nn.ModuleList`` of length
    ``n_layers`` (``model.layers``, ``transformer.h``, ``gpt_neox.layers``, …); raises otherwise."""
    found = [
        name for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers and name
    ]
    if len(found) != 1:
        raise ValueError(
            f"{type(model).__name__}: expected exactly one nn.ModuleList of its {n_layers} decoder layers, found "
            f"{found or 'none'}; this architecture cannot be exported with an intervention."
        )
    return found[0]


def read_spec(folder: str | Path) -> dict:
    """``folder/intervention.json``, checked: valid JSON, an object with :data:`SPEC_KEYS`."""
    path = Path(folder) / SPEC_FILE
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing; the intervention folder is incomplete: export the model again."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt ({e}); it is truncated or hand-edited: export the model again.") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path} holds a JSON {type(spec).__name__}, not an object; export the model again.")
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        raise ValueError(f"{path} lacks {missing}; export the model again.")
    if not isinstance(spec["hook"], str) or spec["rule"] not in RULES:
        raise ValueError(
            f"{path}: hook={spec['hook']!r} must be a hook name and rule={spec['rule']!r} one of {RULES}; "
            "export the model again."
        )
    return spec


def sae_folder(folder: str | Path, spec: dict) -> Path:
    """The SAE folder ``intervention.json`` names (``"sae"``), which must lie inside ``folder``:
    an absolute path, ``..`` or a symlink that resolves outside is refused (an export is self-contained)."""
    folder = Path(folder)
    entry = spec.get("sae", "sae")
    where = folder / SPEC_FILE
    if not isinstance(entry, str) or not entry or Path(entry).is_absolute() or ".." in Path(entry).parts:
        raise ValueError(
            f"{where}: 'sae' = {entry!r} must be a folder name inside {folder} (no absolute path, no '..'); "
            "an export must be self-contained. Export the model again."
        )
    path = (folder / entry).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ValueError(
            f"{where}: 'sae' = {entry!r} resolves to {path}, outside {folder} (a symlink); an export must be "
            "self-contained: copy the SAE into the folder or export the model again."
        )
    if not (path / SAE_CFG_FILE).is_file() or not (path / SAE_WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{path} lacks {SAE_CFG_FILE} or {SAE_WEIGHTS_FILE} (named by {where}); export the model again."
        )
    return path


def check_weights_file(path: str | Path) -> None:
    """Open a safetensors file's header (which must describe exactly the file's bytes): a truncated
    or corrupt file raises ``OSError`` naming it."""
    try:
        with safe_open(str(path), framework="pt") as st:
            st.keys()
    except Exception as e:  # safetensors raises its own error type for every kind of damage
        raise OSError(
            f"{path} is damaged ({type(e).__name__}: {e}); it is truncated or corrupt. Export again."
        ) from None


def read_sae_cfg(sae_dir: str | Path) -> dict:
    """The SAE's ``cfg.json`` (sae-lens's format), naming the file when it is corrupt."""
    path = Path(sae_dir) / SAE_CFG_FILE
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt ({e}); export the model again.") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} holds a JSON {type(cfg).__name__}, not an object; export the model again.")
    return cfg


def check_spec_against_sae(spec: dict, sae_cfg: dict, where: str | Path) -> None:
    """``intervention.json``'s hook and widths must be the SAE's own (``metadata.hook_name``, ``d_sae``, ``d_in``)."""
    own = (sae_cfg.get("metadata") or {}).get("hook_name")
    if own is not None and own != spec["hook"]:
        raise ValueError(
            f"{where} names hook {spec['hook']!r} but its SAE was trained at {own!r}; the two must agree: "
            "export the model again."
        )
    for key in ("d_sae", "d_in"):
        if key in spec and key in sae_cfg and int(spec[key]) != int(sae_cfg[key]):
            raise ValueError(f"{where} says {key}={spec[key]} but its SAE has {key}={sae_cfg[key]}; export again.")


def check_sae_cfg(cfg: dict, where: str | Path = "the SAE") -> None:
    """Refuse an SAE config :class:`SparseCoder` cannot reproduce exactly (another architecture,
    activation normalisation, reshaped activations)."""
    problems = []
    if cfg.get("architecture") not in SAE_ARCHITECTURES:
        problems.append(f"architecture={cfg.get('architecture')!r} (supported: {SAE_ARCHITECTURES})")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        problems.append(f"normalize_activations={cfg.get('normalize_activations')!r} (only 'none')")
    if cfg.get("reshape_activations", "none") not in ("none", None):
        problems.append(f"reshape_activations={cfg.get('reshape_activations')!r} (only 'none')")
    if problems:
        raise ValueError(
            f"{where}: {'; '.join(problems)}: the exported model's SAE code reproduces sae-lens's standard, JumpReLU "
            "and TopK SAEs without activation normalisation only. Use such an SAE (fold the normalisation into "
            "its weights first), or keep the model in the toolkit (load_model)."
        )


def centred_input(cfg: dict, hook: str | None = None) -> bool:
    """Whether an SAE (its ``cfg.json`` as a dict, sae-lens's format) reads per-token centred activations.

    True when its metadata records ``model_from_pretrained_kwargs.center_writing_weights`` (trained on
    TransformerLens's processed model, every write into whose residual stream has zero mean over
    ``d_model``) and its hook (``hook``, else ``metadata.hook_name``) is a :data:`RESIDUAL_WRITE_SITE`.
    There the plain model's activation minus its per-token mean is exactly TransformerLens's: every
    read of the residual stream goes through a LayerNorm, which removes that mean anyway.
    """
    meta = cfg.get("metadata") or {}
    kwargs = meta.get("model_from_pretrained_kwargs") or {}
    site = hook or meta.get("hook_name")
    return (
        bool(kwargs.get("center_writing_weights")) and isinstance(site, str) and bool(RESIDUAL_WRITE_SITE.match(site))
    )


# ----------------------------------------------------------------------------- the SAE
class SparseCoder:
    """sae-lens's inference ``encode``/``decode`` of a standard, JumpReLU or TopK SAE in plain torch.

    ``encode(x) = act((x - b_dec·apply_b_dec_to_input) @ W_enc + b_enc)`` with ReLU, ReLU masked
    by ``pre > threshold`` (JumpReLU) or ReLU of the top ``k`` (TopK, optionally rescaled by the
    decoder norms); ``decode(f) = f @ W_dec + b_dec``. An SAE trained on TransformerLens's centred
    writing weights at a residual site (:func:`centred_input`) encodes ``x`` minus its mean over the
    last dimension; the rewrite adds ``decode(f') - decode(f)`` to the activation as it is (the mean
    it keeps is what every following LayerNorm removes).
    """

    def __init__(self, cfg: dict, weights: dict[str, Tensor], hook: str | None = None):
        check_sae_cfg(cfg)
        self.cfg = cfg
        self.centre = centred_input(cfg, hook)
        self.architecture = str(cfg["architecture"])
        self.apply_b_dec = bool(cfg.get("apply_b_dec_to_input", True))
        self.rescale = bool(cfg.get("rescale_acts_by_decoder_norm", False))
        self.k = int(cfg.get("k", 0))
        w = dict(weights)
        if "log_threshold" in w:  # older JumpReLU checkpoints, as sae-lens converts them
            w["threshold"] = torch.exp(w.pop("log_threshold"))
        need = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if self.architecture == "jumprelu" else [])
        missing = [n for n in need if n not in w]
        if missing:
            raise ValueError(f"the SAE weights lack {missing}.")
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = w["W_enc"], w["b_enc"], w["W_dec"], w["b_dec"]
        self.threshold = w.get("threshold")
        self.d_sae = int(self.W_enc.shape[1])

    @classmethod
    def load(cls, sae_dir: str | Path, hook: str | None = None) -> SparseCoder:
        """Read a folder written by sae-lens's ``save_model`` (``cfg.json`` + ``sae_weights.safetensors``);
        ``hook``: the site it runs at (default: its metadata's ``hook_name``)."""
        sae_dir = Path(sae_dir)
        cfg = read_sae_cfg(sae_dir)
        check_sae_cfg(cfg, sae_dir / SAE_CFG_FILE)
        check_weights_file(sae_dir / SAE_WEIGHTS_FILE)
        return cls(cfg, load_file(str(sae_dir / SAE_WEIGHTS_FILE)), hook)

    @property
    def dtype(self) -> torch.dtype:
        return self.W_dec.dtype

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    def to(self, device: torch.device | str) -> SparseCoder:
        """Move the weights (in place) and return ``self``."""
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device))
        return self

    def encode(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype)
        if self.centre:
            x = x - x.mean(-1, keepdim=True)
        sae_in = x - self.b_dec * self.apply_b_dec
        pre = sae_in @ self.W_enc + self.b_enc
        if self.architecture == "standard":
            return torch.relu(pre)
        if self.architecture == "jumprelu":
            assert self.threshold is not None
            return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)
        if self.rescale:
            pre = pre * self.W_dec.norm(dim=-1)
        values, indices = torch.topk(pre, k=self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, indices, values.relu())

    def decode(self, f: Tensor) -> Tensor:
        if self.architecture == "topk" and self.rescale:
            f = f * (1 / self.W_dec.norm(dim=-1))
        return f @ self.W_dec + self.b_dec


# ------------------------------------------------------------------------- the rewrite
class LatentRewrite:
    """The rule, the chosen latents and the per-call bookkeeping of one intervention.

    ``note_call`` is given the keyword arguments of each forward pass of the whole model (a forward
    pre-hook): the positions, attention mask and KV-cache length that :meth:`edit_mask` needs to
    skip a text's first token and left padding and to carry DSG's counts across generate steps.
    """

    def __init__(self, rule: str, latents: Any, values: Sequence[float], threshold: float | None, d_sae: int) -> None:
        if rule not in RULES:
            raise ValueError(f"rule={rule!r}; choose one of {RULES}.")
        self.latents = check_latent_indices(latents, d_sae)
        if not self.latents:
            raise ValueError(f"latents={latents!r} must be a non-empty list of latent indices.")
        self.values = [float(v) for v in values]
        if len(self.values) != len(self.latents):
            raise ValueError(f"{len(self.values)} values for {len(self.latents)} latents; give one per latent.")
        if any(not torch.isfinite(torch.tensor(v)) or v < 0 for v in self.values):
            raise ValueError(f"values={self.values[:6]} must be finite and >= 0 (magnitudes of the negative edit).")
        if rule == "dsg" and (threshold is None or not 0 <= threshold < 1):
            raise ValueError(f"rule 'dsg' needs threshold in [0, 1) (a share of tokens), got {threshold!r}.")
        self.rule, self.threshold = rule, threshold
        self.idx = torch.tensor(self.latents)
        self.val = torch.tensor(self.values, dtype=torch.float32)
        self.carry: tuple[Tensor, Tensor] | None = None
        self.call: dict = {}

    def reset(self) -> None:
        """Forget the last pass (after removing the hooks)."""
        self.carry, self.call = None, {}

    def note_call(self, kwargs: dict) -> None:
        """Record a forward pass's ``position_ids``, 2-d ``attention_mask`` and KV-cache length."""
        cache: Any = kwargs.get("past_key_values")
        past = int(cache.get_seq_length()) if hasattr(cache, "get_seq_length") else 0
        mask = kwargs.get("attention_mask")
        self.call = {
            "position_ids": kwargs.get("position_ids"),
            "attention_mask": mask if isinstance(mask, Tensor) and mask.dim() == 2 else None,
            "past": past,
        }

    def fires(self, f: Tensor) -> Tensor:
        """Where any chosen latent fires (``... ``-shaped bool)."""
        return (f[..., self.idx.to(f.device)] > 0).any(-1)

    def rewrite(self, f: Tensor, edit: Tensor) -> Tensor:
        """``f'``: the chosen latents rewritten by the rule at positions where ``edit`` is true."""
        idx, val = self.idx.to(f.device), self.val.to(f.device, f.dtype)
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

    def edit_mask(self, f: Tensor) -> Tensor:
        """Which positions are rewritten: every real token but a text's first, and for ``dsg`` only
        flagged tokens where a chosen latent fires (the counts carried across KV-cache steps)."""
        batch, pos = f.shape[:2]
        call, self.call = self.call, {}  # one forward pass, one hook call: never reuse a stale call
        position_ids, mask = call.get("position_ids"), call.get("attention_mask")
        # a KV-cache step (generate after its first pass) continues the texts of the last pass
        carry = self.carry if call.get("past", 0) > 0 and self.carry and self.carry[0].shape[0] == batch else None
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
        self.carry = (hits[:, -1].detach(), n[:, -1].detach())
        if self.rule != "dsg":
            return counted
        return fire & (hits / n.clamp_min(1.0) > float(self.threshold or 0.0))

    def apply(self, x: Tensor, encode: Callable[[Tensor], Tensor], decode: Callable[[Tensor], Tensor]) -> Tensor | None:
        """``x + decode(f') - decode(f)`` for ``f = encode(x)``; ``None`` when no position is edited."""
        f = encode(x)
        edit = self.edit_mask(f)
        if not bool(edit.any()):
            return None
        return x + (decode(self.rewrite(f, edit)) - decode(f))


# -------------------------------------------------------------------- config.json format
def export_config(base: dict, meta: dict) -> dict:
    """``config.json`` of an intervention export from the base model's: a ``model_type`` transformers
    does not know (so a plain load cannot quietly give the base model), an ``auto_map`` to the
    shipped code, and ``meta`` (base model type and classes, layer list, hook) under :data:`CONFIG_KEY`."""
    out = dict(base)
    out["model_type"] = MODEL_TYPE_PREFIX + str(meta["base_model_type"])
    out["architectures"] = [ARCHITECTURE]
    out["auto_map"] = dict(AUTO_MAP)
    out[CONFIG_KEY] = dict(meta)
    return out


def base_config_dict(config: dict, where: str | Path = "config.json") -> tuple[dict, dict] | None:
    """The base model's config dict and the export's meta from an export's ``config.json``
    (``None`` for an ordinary model folder); the inverse of :func:`export_config`."""
    meta = config.get(CONFIG_KEY)
    if meta is None:
        return None
    keys = ("base_model_type", "base_config_class", "base_model_class", "layers", "hook")
    if not isinstance(meta, dict) or any(not isinstance(meta.get(k), str) for k in keys):
        raise ValueError(f"{where}: its '{CONFIG_KEY}' entry lacks {list(keys)}; export the model again.")
    base = {k: v for k, v in config.items() if k not in ("auto_map", CONFIG_KEY)}
    base["model_type"] = meta["base_model_type"]
    base["architectures"] = [meta["base_model_class"]]
    return base, meta
