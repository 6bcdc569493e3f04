"""Export an unlearned model as an ordinary, deployable Hugging Face directory plus an unlearning card.

The folder holds ``config.json``, ``model.safetensors``, the tokenizer files, ``unlearning_card.json``
and ``UNLEARNING_CARD.md`` (source model and its hash, method, layer, latents, subspace ranks,
hyper-parameters, seed, thread count, metrics before and after). It is written with
:func:`sae_unlearn.atomic.atomic_directory`: into a temporary sibling, moved into place only when
complete, exclusively (of two processes exporting to the same new folder exactly one succeeds),
and repaired by the next call after a kill. After writing, the folder is loaded back with
``AutoModelForCausalLM`` in the model's dtype: its weights must be bit-identical
(``reload_weights_identical``) and its logits are compared with the in-memory model's
(``max_logit_diff``: ~1e-5 in float32; in bfloat16 about one unit in the last place of the
largest logit, since the TransformerLens bridge and plain transformers order some ops differently).
Weights are saved in the model's dtype.

A model unlearned by a weight-free method (SAE clamping, DSG: :mod:`sae_unlearn.interventions`)
is exported as its unchanged base weights plus ``intervention/`` (the SAE and the rewrite);
the card says it forgets only with the intervention active, and the reload check loads it with
:func:`~sae_unlearn.models.loading.load_model`, which re-installs the intervention.

Nothing is lost: a target that is, contains or lies inside the source model's folder (symlinks
resolved) is refused, and ``overwrite=True`` replaces only a previous export (a folder with an
unlearning card) or an empty folder, unless ``overwrite_non_export=True`` says otherwise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from sae_unlearn.atomic import atomic_directory
from sae_unlearn.interventions import INTERVENTION_DIR
from sae_unlearn.models.loading import HookedModel, load_model
from sae_unlearn.utils import hash_directory, hash_state_dict, run_environment

logger = logging.getLogger(__name__)

CARD_JSON = "unlearning_card.json"
CARD_MD = "UNLEARNING_CARD.md"


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
            f"SAE latents at `{iv.get('hook')}`, stored in `intervention/`. Load it with "
            "`sae_unlearn.load_model(path)`, which installs the intervention. Loaded with plain "
            "`transformers.AutoModelForCausalLM`, it is the original model and knows everything it knew.",
            "",
        ]
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
    if iv is not None:  # weight-free method: base weights + SAE + intervention config
        card["requires_intervention"] = True
        card["intervention"] = iv.to_dict()
    prompts = check_prompts or ["Q: Where does the author live? A:", "The secret passcode is"]
    ids = model.tokenize(prompts)
    ref = model.logits(ids.input_ids).float().cpu()
    card["dtype"] = str(model.dtype).removeprefix("torch.")
    with atomic_directory(target, overwrite=overwrite) as tmp:
        clean = AutoModelForCausalLM.from_config(model.hf_model.config, dtype=model.dtype)  # saved in the model's dtype
        clean.load_state_dict(state, strict=True)
        clean.save_pretrained(tmp, safe_serialization=True)
        model.tokenizer.save_pretrained(tmp)
        if iv is not None:
            iv.save(tmp / INTERVENTION_DIR)
        del clean
        device_map = getattr(model.hf_model, "hf_device_map", None)
        reloaded = AutoModelForCausalLM.from_pretrained(
            tmp, local_files_only=True, dtype=model.dtype, device_map=device_map
        )
        if device_map is None:
            reloaded.to(model.device)  # type: ignore[arg-type]  # the same device computes both logits
        # the weights must come back bit for bit; the logits may differ by rounding only (in
        # bfloat16, the bridge's and plain transformers' op order differ by about one ulp)
        card["reload_weights_identical"] = hash_state_dict(reloaded.state_dict()) == card["weights_hash"]
        if iv is None:
            logits = reloaded.eval()(input_ids=ids.input_ids.to(model.device), use_cache=False).logits
            del reloaded
        else:  # what a user gets: load_model installs the saved intervention
            del reloaded
            hooked = load_model(tmp, device=model.device, dtype=model.dtype, device_map=device_map)
            if hooked.intervention is None:
                raise RuntimeError(f"the intervention saved in {tmp} was not re-installed by load_model.")
            logits = hooked.logits(ids.input_ids)
            del hooked
        diff = float((logits.float().cpu() - ref).abs().max())
        card["max_logit_diff"] = diff
        card["path"] = str(out_dir)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
        (tmp / CARD_MD).write_text(_card_markdown(card))
        check_export_target(out_dir, model.source, overwrite, overwrite_non_export)  # still safe to replace?
    logger.info("exported %s (max logit diff after reload %.2e)", out_dir, diff)
    return card
