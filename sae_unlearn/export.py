"""Export an unlearned model as an ordinary, deployable Hugging Face directory plus an unlearning card.

The folder holds ``config.json``, ``model.safetensors``, the tokenizer files, ``unlearning_card.json``
and ``UNLEARNING_CARD.md`` (source model and its hash, method, layer, latents, subspace ranks,
hyper-parameters, seed, thread count, metrics before and after). It is written with
:func:`sae_unlearn.atomic.atomic_directory`: into a temporary sibling, moved into place only when
complete, exclusively (of two processes exporting to the same new folder exactly one succeeds),
and repaired by the next call after a kill. After writing, the folder is loaded back in the
model's dtype and checked like with like; a failed check raises and the folder is not written:

- ``reload_weights_identical``: plain ``AutoModelForCausalLM`` gives back every weight bit for bit;
- ``max_logit_diff``: :func:`~sae_unlearn.models.loading.load_model` (the TransformerLens bridge
  the unlearned model was evaluated through) gives the in-memory model's logits on the same
  prompts: identical weights through the same ops, so at most one unit in the last place of the
  largest logit (0.0 on a CPU) in any dtype;
- ``plain_transformers_max_logit_diff``: plain transformers, what a deployment runs, against the
  same logits. The bridge computes attention with its own ops rather than transformers' SDPA
  kernel, so the two round differently: ~1e-5 in float32 (7e-6 on `secrets`; tolerance 1e-4), one to two units in the
  last place of the largest logit in bfloat16 (0.125 on `secrets`, whose largest logit is 19;
  tolerance four units). This is why a bfloat16 export once showed identical weights with logits
  0.19 apart: it compared the bridge with plain transformers.

Weights are saved in the model's dtype, in shards of at most :data:`SHARD_SIZE` written one after
the other straight from the live tensors (no copy of the model is made). The reload check needs a
second copy of the model; while it runs, the in-memory model's clean file pages are handed back
to the kernel (:func:`~sae_unlearn.utils.page_out`: read again from their file when next used,
values unchanged), so on a CPU the export's peak stays near one copy of the model (gemma-2-2b:
benchmarks/real_size.md).

A model unlearned by a weight-free method (SAE clamping, DSG: :mod:`sae_unlearn.interventions`)
is exported as its unchanged base weights plus ``intervention/`` (the SAE and the rewrite). Such
weights alone are the original model, which still knows everything, so the export must never be
loadable as them by accident: its ``config.json`` names a ``model_type`` transformers does not
know (``sae_unlearn_<base>``) and an ``auto_map`` to ``intervention_modeling.py`` and
``intervention_runtime.py``, copied into the folder from this package. Plain
``AutoModelForCausalLM.from_pretrained(path)`` therefore refuses it (transformers asks for
``trust_remote_code=True``); with ``trust_remote_code=True`` it loads the base architecture's class
with the intervention installed. :func:`~sae_unlearn.models.loading.load_model` loads it without
running code from the folder. The reload check loads it both ways: ``max_logit_diff`` is
``load_model``'s, and ``plain_transformers_max_logit_diff`` compares plain transformers with
``load_model`` (the export fails when they disagree beyond rounding). Only SAEs at a residual
stream hook (``blocks.{l}.hook_resid_post`` / ``hook_resid_pre``) whose encoder the shipped code
reproduces (sae-lens's standard, JumpReLU and TopK, no activation normalisation) are exported;
others are refused before anything is written.

Nothing is lost: a target that is, contains or lies inside the source model's folder (symlinks
resolved) is refused, and ``overwrite=True`` replaces only a previous export (a folder with an
unlearning card) or an empty folder, unless ``overwrite_non_export=True`` says otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from sae_unlearn import intervention_runtime as runtime
from sae_unlearn.atomic import atomic_directory
from sae_unlearn.interventions import INTERVENTION_DIR
from sae_unlearn.models.loading import HookedModel, intervention_export_config, load_model
from sae_unlearn.utils import hash_directory, hash_state_dict, page_out, run_environment

logger = logging.getLogger(__name__)

CARD_JSON = "unlearning_card.json"
CARD_MD = "UNLEARNING_CARD.md"
#: Largest weights file of an export: written one at a time, so a shard is the most the save adds in memory.
SHARD_SIZE = "2GB"


def intervention_runtimes() -> dict[str, str]:
    """How each runtime serves an SAE-intervention export (recorded in its card)."""
    return {
        "sae_unlearn": "sae_unlearn.load_model(DIR) installs the intervention "
        "(intervention=False: the original weights)",
        "transformers": "AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True) runs the shipped "
        "intervention_modeling.py; without trust_remote_code it refuses to load",
        "lm_eval": "lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True ...",
        "vllm": "not supported (untested): the export's model_type has no vLLM implementation, and vLLM's own "
        "implementation of the base architecture would run without the intervention; serve the export of a "
        "weight-editing method (SSPU, RMU, ...) instead",
    }


def _card_markdown(card: dict) -> str:
    lines = [
        f"# Unlearning card: {card.get('method', '?')}",
        "",
    ]
    if card.get("requires_intervention"):
        iv = card.get("intervention", {})
        lines += [
            f"> **This model forgets only with its SAE intervention active.** Its weights are the source "
            f"model's, unchanged; the forgetting is the `{iv.get('rule')}` rewrite of {len(iv.get('latents', []))} "
            f"SAE latents at `{iv.get('hook')}`, stored in `intervention/` and run by the shipped "
            "`intervention_modeling.py`. Without it the weights are the original model, which knows everything "
            "it knew: plain `AutoModelForCausalLM.from_pretrained(path)` therefore refuses to load this folder "
            "unless given `trust_remote_code=True`.",
            "",
            "| runtime | how |",
            "| --- | --- |",
        ]
        lines += [f"| {name} | {how} |" for name, how in card.get("runtimes", {}).items()]
        lines.append("")
    lines += [
        f"- source model: `{card.get('source_model')}` (sha256 of files: `{card.get('source_hash')}`)",
        f"- method: **{card.get('method')}**, layer {card.get('layer')} (`{card.get('hook')}`)",
        f"- weights sha256: `{card.get('weights_hash')}`; seed {card.get('seed')}; "
        f"torch threads {card.get('environment', {}).get('torch_threads')} (same seed and thread count: same weights)",
    ]
    if "subspace" in card:
        sub = card["subspace"]
        lines.append(f"- subspace ranks: relevant {sub.get('relevant_rank')}, irrelevant {sub.get('irrelevant_rank')}")
    if card.get("updated_parameters"):
        lines.append(f"- updated matrices: {', '.join(f'`{p}`' for p in card['updated_parameters'])}")
    if card.get("out_of_subspace_residual") is not None:
        lines.append(f"- out-of-subspace residual of the weight change: {card['out_of_subspace_residual']:.2e}")
    if card.get("latents"):
        lines.append(f"- relevant latents: {card['latents'].get('relevant', [])[:16]}")
    if card.get("metrics"):
        lines += ["", "| metric | before | after |", "| --- | --- | --- |"]
        before, after = card["metrics"].get("before", {}), card["metrics"].get("after", {})
        for k in sorted(set(before) | set(after)):
            b, a = before.get(k), after.get(k)
            fmt = lambda x: f"{x:.4f}" if isinstance(x, float) else str(x)  # noqa: E731
            lines.append(f"| {k} | {fmt(b)} | {fmt(a)} |")
    lines += [
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps(card.get("hyperparameters", {}), indent=2),
        "```",
        "",
    ]
    lines.append(f"Export check: max |logit difference| after reload = {card.get('max_logit_diff')}")
    if card.get("plain_transformers_max_logit_diff") is not None:
        lines.append(
            "; plain transformers (`trust_remote_code=True`) vs `load_model`: "
            f"{card['plain_transformers_max_logit_diff']}"
        )
    return "\n".join(lines) + "\n"


def check_export_target(
    out_dir: str | Path, source: str | Path, overwrite: bool = False, overwrite_non_export: bool = False
) -> Path:
    """Check that exporting to ``out_dir`` can lose nothing; return the resolved target.

    Raises ``ValueError`` when the target is, contains or lies inside ``source`` (symlinks
    resolved), and ``FileExistsError`` when it exists and ``overwrite`` is off, when it is a
    file, or when it is a non-empty folder that is not a previous export (no
    ``unlearning_card.json``) and ``overwrite_non_export`` is off.
    """
    target = Path(out_dir).expanduser().resolve()
    src = Path(source).expanduser()
    if src.exists():
        src = src.resolve()
        if target == src or src in target.parents or target in src.parents:
            relation = "is" if target == src else ("lies inside" if src in target.parents else "contains")
            raise ValueError(
                f"refusing to export to {target}: it {relation} the source model {src}, which would be "
                "modified or deleted. Choose a folder outside the source."
            )
    if not target.exists():
        return target
    if not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace a previous export.")
    if not target.is_dir():
        raise FileExistsError(f"{target} is a file, not an export folder; remove it or choose another path.")
    if not overwrite_non_export and not (target / CARD_JSON).is_file() and any(target.iterdir()):
        listing = sorted(p.name for p in target.iterdir())[:6]
        raise FileExistsError(
            f"{target} is a non-empty folder that is not a previous export (no {CARD_JSON}; it holds {listing}); "
            "overwrite=True replaces only exports. Pass overwrite_non_export=True if the whole folder may go."
        )
    return target


@torch.no_grad()
def export_model(
    model: HookedModel,
    out_dir: str | Path,
    card: dict,
    overwrite: bool = False,
    check_prompts: list[str] | None = None,
    overwrite_non_export: bool = False,
) -> dict:
    """Write ``model`` as a Hugging Face directory with an unlearning card; return the card.

    Args:
        model: the (unlearned) model; its weights are saved under their original HF names.
        out_dir: target folder (must not exist unless ``overwrite``); never the source model's
            folder, a folder inside it or one that contains it.
        card: method, layer, latents, hyper-parameters, metrics, …; the source hash, weights hash,
            environment (torch version, thread count) and the reload check are added.
        overwrite: replace a previous export (or an empty folder) at ``out_dir``.
        check_prompts: prompts for the reload check (default: two generic ones).
        overwrite_non_export: with ``overwrite``, also replace a non-empty folder that is not an
            export (everything in it is deleted).

    Raises:
        FileExistsError: the target exists (see above), also when another process finished
            writing it while this export ran (that export is left as it is).
    """
    if not isinstance(card, dict):
        raise TypeError(f"card must be a dict (method, layer, hyper-parameters, …), not {type(card).__name__}.")
    target = check_export_target(out_dir, model.source, overwrite, overwrite_non_export)
    source = Path(model.source)
    state = model.hf_state_dict()
    card = dict(card)
    card.setdefault("source_model", model.source)
    card["source_hash"] = hash_directory(source) if source.is_dir() else None
    card["weights_hash"] = hash_state_dict(state)
    card["environment"] = run_environment()
    iv = getattr(model, "intervention", None)
    if iv is not None:  # weight-free method: base weights + SAE + intervention config + the code serving it
        runtime.parse_site(iv.hook)  # a site the shipped code can hook, else refuse before any work
        runtime.check_sae_cfg(iv.sae.cfg.to_dict(), f"the SAE at {iv.hook}")
        card["requires_intervention"] = True
        card["intervention"] = iv.to_dict()
        card["runtimes"] = intervention_runtimes()
    prompts = check_prompts or ["Q: Where does the author live? A:", "The secret passcode is"]
    ids = model.tokenize(prompts)
    ref = model.logits(ids.input_ids).float().cpu()
    card["dtype"] = str(model.dtype).removeprefix("torch.")
    with atomic_directory(target, overwrite=overwrite) as tmp:
        skeleton = _save_weights(model, state, tmp)
        model.tokenizer.save_pretrained(tmp)
        if iv is not None:
            iv.save(tmp / INTERVENTION_DIR)
            _write_intervention_config(tmp, skeleton, iv.hook)
        del skeleton
        # the reloads below hold the model a second time: the in-memory weights' clean pages go back to
        # their files meanwhile (read again when next used), so the check adds ~nothing to the peak
        page_out(state.values())
        device_map = getattr(model.hf_model, "hf_device_map", None)
        base_config = intervention_export_config(tmp) if iv is not None else None
        reloaded = AutoModelForCausalLM.from_pretrained(
            tmp, local_files_only=True, dtype=model.dtype, device_map=device_map, config=base_config
        )
        if device_map is None:
            reloaded.to(model.device)  # type: ignore[arg-type]  # the same device computes both logits
        card["reload_weights_identical"] = hash_state_dict(reloaded.state_dict()) == card["weights_hash"]
        if not card["reload_weights_identical"]:
            raise RuntimeError(f"the weights saved in {tmp} do not load back bit for bit; the export is not written.")
        plain = None  # an intervention export's plain weights are the original model: compared below, with the code
        if iv is None:
            plain = reloaded.eval()(input_ids=ids.input_ids.to(model.device), use_cache=False).logits.float().cpu()
        del reloaded
        # like with like: the toolkit's own path (the bridge, and the intervention it re-installs) on the
        # saved folder must give the in-memory model's logits (identical weights, the same ops: ~0)
        hooked = load_model(tmp, device=model.device, dtype=model.dtype, device_map=device_map)
        if iv is not None and hooked.intervention is None:
            raise RuntimeError(f"the intervention saved in {tmp} was not re-installed by load_model.")
        logits = hooked.logits(ids.input_ids).float().cpu()
        del hooked
        diff = card["max_logit_diff"] = _checked_diff(
            logits, ref, same_path_tolerance(model.dtype, ref), tmp, "load_model"
        )
        # what a deployment runs: plain transformers (the bridge computes attention with its own ops, so
        # the two round differently in half precision: a few units in the last place of the largest logit)
        if plain is not None:
            card["plain_transformers_max_logit_diff"] = _checked_diff(
                plain, ref, other_path_tolerance(model.dtype, ref), tmp, "plain transformers"
            )
        else:
            card["plain_transformers_max_logit_diff"] = _check_plain_load(tmp, ids.input_ids, logits, model, device_map)
        card["path"] = str(out_dir)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
        (tmp / CARD_MD).write_text(_card_markdown(card))
        check_export_target(out_dir, model.source, overwrite, overwrite_non_export)  # still safe to replace?
    logger.info("exported %s (max logit diff after reload %.2e)", out_dir, diff)
    return card


def _save_weights(model: HookedModel, state: dict[str, torch.Tensor], folder: Path) -> PreTrainedModel:
    """Save ``state`` (the live tensors) as ``model``'s architecture in its dtype, shard by shard.

    No copy of the model is made: a skeleton of the architecture on the meta device takes the
    live tensors (``assign=True``) and transformers writes them shard by shard
    (:data:`SHARD_SIZE`), dropping tied duplicates as it does for any model. Returns the skeleton
    (its module tree names the architecture's classes and layers)."""
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model.hf_model.config, dtype=model.dtype)
    skeleton.load_state_dict(state, strict=True, assign=True)
    skeleton.save_pretrained(folder, safe_serialization=True, max_shard_size=SHARD_SIZE)
    return skeleton


def _write_intervention_config(folder: Path, clean: PreTrainedModel, hook: str) -> None:
    """Turn ``folder``'s ``config.json`` into an intervention export's and ship the code serving it."""
    config = clean.config
    layers = runtime.find_layer_list(clean, int(config.num_hidden_layers))
    meta = {
        "base_model_type": config.model_type,
        "base_config_class": type(config).__name__,
        "base_model_class": type(clean).__name__,
        "layers": layers,
        "hook": hook,
        "intervention": INTERVENTION_DIR,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(runtime.export_config(json.loads(path.read_text()), meta), indent=2) + "\n")
    here = Path(runtime.__file__).parent
    for name in (runtime.MODELING_FILE, runtime.RUNTIME_FILE):
        shutil.copyfile(here / name, folder / name)


def _check_plain_load(
    folder: Path, input_ids: torch.Tensor, expected: torch.Tensor, model: HookedModel, device_map
) -> float:
    """Load ``folder`` with plain transformers (``trust_remote_code=True``) and return its max |logit
    difference| from ``expected`` (``load_model``'s); raise when the intervention is missing or the
    logits differ beyond rounding, so that no export serves other behaviour in plain transformers."""
    plain = AutoModelForCausalLM.from_pretrained(
        folder, trust_remote_code=True, local_files_only=True, dtype=model.dtype, device_map=device_map
    )
    if device_map is None:
        plain.to(model.device)  # type: ignore[arg-type]
    if getattr(plain, "sae_unlearn_intervention", None) is None:
        raise RuntimeError(f"plain transformers loaded {folder} without its intervention; the export is not written.")
    logits = plain.eval()(input_ids=input_ids.to(model.device), use_cache=False).logits.float().cpu()
    del plain
    exp = expected.float().cpu()
    return _checked_diff(logits, exp, other_path_tolerance(model.dtype, exp), folder, "plain transformers")


def same_path_tolerance(dtype: torch.dtype, ref: torch.Tensor) -> float:
    """The largest |logit difference| allowed between two runs of the same code on the same weights:
    one unit in the last place of the largest logit (0 is what a CPU gives; a GPU may reorder a sum)."""
    return float(torch.finfo(dtype).eps * max(1.0, float(ref.abs().max())))


def other_path_tolerance(dtype: torch.dtype, ref: torch.Tensor) -> float:
    """The largest |logit difference| allowed between the toolkit's bridge and plain transformers on
    the same weights: 1e-4 in float32, four units in the last place of the largest logit in half
    precision (the bridge computes attention with its own ops, which round differently: measured one
    to two units on the zoo models in bfloat16)."""
    if torch.finfo(dtype).eps < 1e-6:
        return 1e-4
    return float(4 * torch.finfo(dtype).eps * max(1.0, float(ref.abs().max())))


def _checked_diff(logits: torch.Tensor, ref: torch.Tensor, tol: float, folder: Path, how: str) -> float:
    """``max |logits - ref|``; raise (the export is not written) when it exceeds ``tol``."""
    diff = float((logits.float().cpu() - ref.float().cpu()).abs().max())
    if not diff <= tol:
        raise RuntimeError(
            f"{folder} loaded with {how} gives logits {diff:.2e} away from the unlearned model's (tolerance "
            f"{tol:.1e} for its dtype); the export is not written. Please report this with the model's architecture "
            "and dtype."
        )
    return diff
