"""Export an unlearned model as an ordinary, deployable Hugging Face directory plus an unlearning card.

The folder holds ``config.json``, ``model.safetensors``, the tokenizer files, ``unlearning_card.json``
and ``UNLEARNING_CARD.md`` (source model and its hash, method, layer, latents, subspace ranks,
hyper-parameters, seed, metrics before and after). It is written into a temporary sibling and
renamed into place only when complete, so an interrupted export never leaves a folder that
half-loads. After writing, the folder is loaded back with ``AutoModelForCausalLM`` and its logits
compared with the in-memory model's (``max_logit_diff`` in the card).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from sae_unlearn.models.loading import HookedModel
from sae_unlearn.utils import atomic_directory, hash_directory, hash_state_dict

logger = logging.getLogger(__name__)

CARD_JSON = "unlearning_card.json"
CARD_MD = "UNLEARNING_CARD.md"


def _card_markdown(card: dict) -> str:
    lines = [
        f"# Unlearning card: {card.get('method', '?')}",
        "",
        f"- source model: `{card.get('source_model')}` (sha256 of files: `{card.get('source_hash')}`)",
        f"- method: **{card.get('method')}**, layer {card.get('layer')} (`{card.get('hook')}`)",
        f"- weights sha256: `{card.get('weights_hash')}`; seed {card.get('seed')}",
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


@torch.no_grad()
def export_model(
    model: HookedModel,
    out_dir: str | Path,
    card: dict,
    overwrite: bool = False,
    check_prompts: list[str] | None = None,
) -> dict:
    """Write ``model`` as a Hugging Face directory with an unlearning card; return the card.

    Args:
        model: the (unlearned) model; its weights are saved under their original HF names.
        out_dir: target folder (must not exist unless ``overwrite``).
        card: method, layer, latents, hyper-parameters, metrics, …; the source hash, weights hash
            and the reload check are added.
        check_prompts: prompts for the reload check (default: two generic ones).
    """
    out_dir = Path(out_dir)
    source = Path(model.source)
    if source.exists() and out_dir.resolve() == source.resolve():
        raise ValueError(f"refusing to export onto the source model {source}; the source is never modified.")
    state = model.hf_state_dict()
    card = dict(card)
    card.setdefault("source_model", model.source)
    card["source_hash"] = hash_directory(source) if source.is_dir() else None
    card["weights_hash"] = hash_state_dict(state)
    prompts = check_prompts or ["Q: Where does the author live? A:", "The secret passcode is"]
    ids = model.tokenize(prompts)
    ref = model.logits(ids.input_ids).float().cpu()
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        clean = AutoModelForCausalLM.from_config(model.hf_model.config)
        clean.load_state_dict(state, strict=True)
        clean.save_pretrained(tmp, safe_serialization=True)
        model.tokenizer.save_pretrained(tmp)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, local_files_only=True).eval()
        diff = float((reloaded(input_ids=ids.input_ids, use_cache=False).logits.float() - ref).abs().max())
        card["max_logit_diff"] = diff
        card["path"] = str(out_dir)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
        (tmp / CARD_MD).write_text(_card_markdown(card))
    logger.info("exported %s (max logit diff after reload %.2e)", out_dir, diff)
    return card
