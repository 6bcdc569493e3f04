"""Resolving a recipe on a model (hooks, parameter names), running it end to end, and the
``recipe`` command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import tempfile
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sae_unlearn.atomic import atomic_directory, output_lock, read_json, write_json_atomic
from sae_unlearn.data.corpora import corpus_data
from sae_unlearn.evaluation.multiple_choice import MCQuestion, multiple_choice_accuracy
from sae_unlearn.export import CARD_JSON, export_model
from sae_unlearn.models.architectures import ARCHITECTURES, Shape, small_config
from sae_unlearn.models.loading import HookedModel, hub_reachable, load_model
from sae_unlearn.models.training import LMTrainConfig, train_causal_lm
from sae_unlearn.pipeline import PipelineData, knowledge_metrics, sae_stage
from sae_unlearn.recipes.data import _check_out_dir, _needs_hub, _sample, load_questions, load_texts
from sae_unlearn.recipes.measure import StageMeter
from sae_unlearn.recipes.spec import Recipe, RecipeError, load_recipe
from sae_unlearn.saes import load_saes
from sae_unlearn.saes.pretrained import GEMMA_SCOPE_FILE
from sae_unlearn.unlearning import UnlearningResult, default_params, get_method
from sae_unlearn.unlearning.base import resolve_params
from sae_unlearn.utils import check_forget_retain, run_environment

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------ hooks and parameters


def twin_model(architecture: str, n_layers: int) -> HookedModel:
    """A random model of ``architecture`` with ``n_layers`` blocks and a tiny width (on the CPU)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    if architecture not in ARCHITECTURES:
        raise RecipeError(f"no twin for architecture {architecture!r}; covered: {sorted(ARCHITECTURES)}.")
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + "the a of to and in is it".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    # hook and parameter names depend only on the architecture and its depth: the width can be tiny
    config = small_config(architecture, Shape(32, n_layers, 2, 64, len(vocab), max_position=64))
    with tempfile.TemporaryDirectory(prefix="sae-unlearn-twin-") as folder:
        transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return load_model(folder, device="cpu")


def check_recipe(recipe: Recipe, model: HookedModel, hooks: list[str] | None = None) -> dict[str, list[str]]:
    """Resolve the recipe on ``model``: its architecture and depth are the declared ones, every SAE
    hook exists, and the parameters each hook's edit would update (``[unlearning] params``, else
    the default MLP output matrices) exist. Returns ``{hook: parameter names}``.

    ``hooks`` defaults to the recipe's SAE hooks (a folder's are read from it)."""
    _check_architecture(recipe, str(getattr(model.hf_model.config, "model_type", "?")), model.n_layers, model.source)
    hooks = hooks if hooks is not None else list(recipe.saes.ids) or list(load_sae_folder(recipe.saes.folder))
    try:
        model.validate_hooks(hooks)
        resolved = {}
        for hook in hooks:
            names = recipe.unlearning.get("params") or default_params(model, hook)
            resolve_params(model, names)
            resolved[hook] = list(names)
    except (KeyError, ValueError, NotImplementedError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise RecipeError(f"recipe {recipe.name!r} on {model.source}: {message}") from None
    return resolved


def _check_architecture(recipe: Recipe, architecture: str, n_layers: Any, source: str) -> None:
    if (architecture, n_layers) != (recipe.model.architecture, recipe.model.n_layers):
        raise RecipeError(
            f"recipe {recipe.name!r} is for {recipe.model.architecture} with {recipe.model.n_layers} layers, "
            f"but {source} is {architecture} with {n_layers}; use the recipe's model or fix [model]."
        )


# -------------------------------------------------------------------------------------- run
def run_recipe(
    recipe: Recipe | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> dict:
    """Run a recipe and return its report (also ``OUT/report.json``); with ``dry_run`` only check it.

    Everything that can fail early (recipe, output folder, data files, hub reachability) is checked
    before any model is loaded; the output folder appears only complete."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    out = recipe.out_dir(out_dir)
    _check_out_dir(out, recipe)
    needs = _needs_hub(recipe)
    if dry_run:
        return _dry_run(recipe, out, needs)
    if needs and (os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable()):
        raise RecipeError(
            "the Hugging Face hub cannot be reached (or HF_HUB_OFFLINE=1), but the recipe needs it for: "
            + "; ".join(needs)
        )
    logger.info("recipe %s writes %s", recipe.name, out)
    with _only_writer(out):
        return _run(recipe, out, progress)


@contextlib.contextmanager
def _only_writer(out: Path) -> Iterator[None]:
    """Be the only run writing ``out`` from the first load to the final rename.

    The lock is :func:`~sae_unlearn.atomic.output_lock`'s (so a demo or a fit into the same folder
    is refused too), taken without creating the folder: a recipe's output appears only complete. A
    second run fails at once with :class:`~sae_unlearn.atomic.FolderBusyError` instead of after
    hours of work at the final rename."""
    with output_lock(out, "recipe run", folder=False):
        _check_out_dir(out)  # again, under the lock: a run that finished meanwhile wrote it
        yield


#: The stages of a run, in order; tokens are counted in those that run the model on text.
STAGES = ("load", "teach", "eval_before", "sae_stage", "unlearning", "eval_after", "export")
TOKEN_STAGES = ("teach", "eval_before", "sae_stage", "unlearning", "eval_after")


def _run(recipe: Recipe, out: Path, progress: bool, rehearsal: dict | None = None) -> dict:
    """Every stage of a run, in order, each measured (``report["stages"]``, see
    :class:`~sae_unlearn.recipes.measure.StageMeter`); ``rehearsal`` is recorded as the report's
    ``rehearsal`` (what a rehearsal cut and generated)."""
    t0 = time.perf_counter()
    meter = StageMeter(TOKEN_STAGES)
    with meter("load"):
        data, questions = _load_data(recipe)
        model = load_model(
            recipe.model.source,
            device=recipe.model.device,
            dtype=recipe.model.dtype,
            device_map=recipe.model.device_map or None,
        )
        saes = _load_saes(recipe, str(model.device))
        check_recipe(recipe, model, list(saes))
    meter.vocab_size = _vocab_size(model)
    report: dict = {"recipe": recipe.to_dict(), "environment": run_environment(), "model": _describe(model)}
    if rehearsal is not None:
        report["rehearsal"] = rehearsal
    report["data"] = {"n_forget_texts": len(data.forget_texts), "n_retain_texts": len(data.retain_texts)}
    report["data"] |= {f"n_{role}_questions": len(qs) for role, qs in questions.items()}
    if data.split is not None:
        report["data"] |= {"n_forget_facts": len(data.split.forget), "n_retain_facts": len(data.split.retain)}
    report["saes"] = {h: {"d_in": int(s.cfg.d_in), "d_sae": int(s.cfg.d_sae)} for h, s in saes.items()}
    # loaded above only to check them before any work; read again by the SAE stage, so that the
    # evaluation and [teach] do not hold them (five float32 16k SAEs are 0.3x gemma-2-2b's bfloat16 bytes)
    del saes
    gc.collect()
    if recipe.teach is not None:
        with meter("teach"):
            losses = teach(model, data.forget_texts + data.retain_texts, recipe.teach, progress)
        report["teach"] = {"epoch_losses": losses}
    with meter("eval_before"):
        report["before"] = _metrics(model, recipe, data, questions)
    sel = recipe.selection
    with meter("sae_stage"):
        saes = _load_saes(recipe, str(model.device))
        stage = sae_stage(model, data, None, sel, saes, progress=progress)
    report["sae"] = {h: s.to_dict() for h, s in stage.fit.stats.items()}
    result = stage.selection
    report["selection"] = {
        "hook": result.hook,
        "layer": result.layer,
        "layer_scores": result.layer_scores,
        "relevant": [int(i) for i in result.latents.relevant],
        "irrelevant": [int(i) for i in result.latents.irrelevant],
    }
    report["subspace"] = stage.subspaces.diagnostics()
    with meter("unlearning"):
        settings = {**recipe.settings(), "hook": result.hook}
        method = get_method(recipe.method).from_stage(stage, settings)
        # the method holds what it needs of the SAEs (a subspace, or the chosen hook's SAE): the rest go
        del saes
        stage.fit.saes.clear()
        gc.collect()
        res = method.apply(model, data.forget_texts, data.retain_texts, progress=progress)
    report["unlearning"] = {
        "settings": res.config,
        "params": res.params,
        "steering_coef": res.steering_coef,
        "stopped_early": res.stopped_early,
        "mean_step_seconds": res.mean_step_seconds,
        "steps_run": len(res.history),
        "final_losses": res.history[-1] if res.history else {},
        **{k: v for k, v in res.extra.items() if not isinstance(v, dict)},
    }
    with meter("eval_after"):
        report["after"] = _metrics(model, recipe, data, questions)
    if torch.cuda.is_available():
        report["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    report["expected"] = recipe.expected.to_dict()
    with atomic_directory(out) as tmp:  # the folder appears only complete
        with meter("export"):
            report["export"] = _export(model, tmp, out, recipe, report, res)
        report["stages"] = meter.stages
        if rehearsal is not None:  # where a rehearsal's reader looks: rehearsal.stages.<stage>.seconds
            report["rehearsal"]["stages"] = meter.stages
        report["timing"] = {f"{k}_s": v["seconds"] for k, v in meter.stages.items()}
        report["timing"]["total_s"] = time.perf_counter() - t0
        peak = max(v["peak_rss_mb"] for v in meter.stages.values())
        report["peak_rss_mb"] = peak
        report["peak_rss_over_model_bytes"] = round(peak * 2**20 / report["model"]["bytes"], 3)
        write_json_atomic(tmp / "report.json", report)
        write_json_atomic(tmp / "recipe.json", recipe.to_dict())
    logger.info("recipe %s done in %.0fs: %s", recipe.name, report["timing"]["total_s"], out)
    return report


def _vocab_size(model: HookedModel) -> int:
    return int(model.hf_model.config.get_text_config().vocab_size)


def _export(model: HookedModel, tmp: Path, out: Path, recipe: Recipe, report: dict, res: UnlearningResult) -> dict:
    """Export the unlearned model to ``tmp/model`` with its card (naming its final place under ``out``)."""
    sel = report["selection"]
    card = {
        "method": recipe.method,
        "data": recipe.name,
        "hook": sel["hook"],
        "layer": sel["layer"],
        "latents": {"relevant": sel["relevant"], "irrelevant": sel["irrelevant"], "scorer": recipe.selection.scorer},
        "subspace": report["subspace"] | {"principal_angles_deg": None},
        "hyperparameters": res.config,
        "seed": res.config["seed"],
        "updated_parameters": res.params,
        "out_of_subspace_residual": res.extra.get("out_of_subspace_residual"),
        "metrics": {"before": report["before"], "after": report["after"]},
    }
    exported = export_model(model, tmp / "model", card)
    card_path = tmp / "model" / CARD_JSON
    write_json_atomic(card_path, read_json(card_path, "unlearning card") | {"path": str(out / "model")})
    return {"path": str(out / "model"), "max_logit_diff": exported["max_logit_diff"]}


def _dry_run(recipe: Recipe, out: Path, needs: list[str]) -> dict:
    """Check what can be checked offline and write nothing."""
    texts = {}
    for role in ("forget", "retain"):
        src = getattr(recipe.data, role)
        if src is not None and src.local() is not None:
            texts[role] = len(load_texts(src, recipe.seed))
    for role in ("forget_mc", "control_mc"):
        src = getattr(recipe.eval, role)
        if src is not None and src.local() is not None:
            texts[role] = len(load_questions(src, recipe.seed))
    source = Path(recipe.model.source).expanduser()
    if (source / "config.json").is_file():  # a local model: its declared architecture and depth, without weights
        cfg = read_json(source / "config.json", "model config")
        depth = cfg.get("num_hidden_layers", cfg.get("n_layer"))
        _check_architecture(recipe, str(cfg.get("model_type")), depth, str(source))
    twin = twin_model(recipe.model.architecture, recipe.model.n_layers)
    resolved = check_recipe(recipe, twin)
    return {
        "recipe": recipe.name,
        "out": str(out),
        "checked_on": f"random {recipe.model.architecture} with {recipe.model.n_layers} layers (tiny width)",
        "hooks": resolved,
        "local_data": texts,
        "needs_hub": needs,
        "expected": recipe.expected.to_dict(),
    }


def _load_data(recipe: Recipe) -> tuple[PipelineData, dict[str, list[MCQuestion]]]:
    if recipe.data.corpus:  # a registered corpus (sae_unlearn.data.corpora)
        corpus, n, seed = corpus_data(recipe.data.corpus), recipe.data.max_texts, recipe.seed
        split = corpus.split
        split = dataclasses.replace(split, forget=_sample(split.forget, n, seed), retain=_sample(split.retain, n, seed))
        forget, retain = _sample(corpus.forget_texts, n, seed), _sample(corpus.retain_texts, n, seed)
        data = PipelineData(recipe.name, split, forget, retain)
    else:
        assert recipe.data.forget is not None and recipe.data.retain is not None  # checked by DataSpec
        forget, retain = load_texts(recipe.data.forget, recipe.seed), load_texts(recipe.data.retain, recipe.seed)
        overlap = set(forget) & set(retain)
        forget = [t for t in forget if t not in overlap]  # a text on both sides is neither forgotten nor kept
        retain = [t for t in retain if t not in overlap]
        # no facts to score: sae_stage and the methods read only the texts
        data = PipelineData(recipe.name, typing.cast(Any, None), forget, retain)
    try:
        check_forget_retain(data.forget_texts, data.retain_texts)
    except ValueError as e:
        raise RecipeError(f"recipe {recipe.name!r}: {e}") from None
    questions = {
        role: load_questions(src, recipe.seed)
        for role in ("forget_mc", "control_mc")
        if (src := getattr(recipe.eval, role)) is not None
    }
    return data, questions


def _load_saes(recipe: Recipe, device: str) -> dict:
    if recipe.saes.folder:
        return load_sae_folder(recipe.saes.folder, device)
    saes = {}
    for hook, source in recipe.saes.sources.items():
        loaded = load_saes(source, hook=hook, device=device)
        own = next(iter(loaded))
        if own != hook:
            raise RecipeError(f"{source} is an SAE of {own!r}, not {hook!r}; fix [saes.ids].")
        saes[hook] = loaded[own]
    return saes


def load_sae_folder(folder: str | os.PathLike, device: str = "cpu") -> dict:
    """``{hook: SAE}`` from a folder :func:`~sae_unlearn.saes.load_saes` reads, or from a local copy
    of a Gemma Scope repository: every ``params.npz`` under it, each hook read from its folder's
    ``layer_{L}`` (``layer_3/width_16k/average_l0_53/params.npz``, as the hub stores them)."""
    path = Path(folder).expanduser()
    try:
        return load_saes(path, device=device)
    except FileNotFoundError:
        found = sorted(p.parent for p in path.rglob(GEMMA_SCOPE_FILE)) if path.is_dir() else []
        if not found:
            raise
    saes: dict = {}
    for sub in found:
        for hook, sae in load_saes(sub, device=device).items():
            if hook in saes:
                raise RecipeError(f"two Gemma Scope SAEs under {path} are for {hook!r}; keep one per layer.")
            saes[hook] = sae
    return saes


def teach(model: HookedModel, texts: list[str], config: LMTrainConfig, progress: bool = True) -> list[float]:
    """Fine-tune every weight of ``model`` on ``texts`` in place; returns each epoch's mean loss.

    Training runs on a plain Hugging Face copy and the result is copied back by name: the bridge
    adds parameters a plain model lacks (e.g. a bias on GPT-2's unembedding) that must stay as they
    are, or the exported model would differ from the one evaluated."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_config(model.hf_model.config)
    plain.load_state_dict(model.hf_state_dict())
    plain.to(device=model.device, dtype=next(model.hf_model.parameters()).dtype)
    losses = train_causal_lm(plain, model.tokenizer, [("", t) for t in texts], config, progress=progress)
    trained = plain.state_dict()
    with torch.no_grad():
        for name, p in model.hf_named_parameters().items():
            p.copy_(trained[name])
    return losses


def _metrics(model: HookedModel, recipe: Recipe, data: PipelineData, questions: dict) -> dict[str, float]:
    out = knowledge_metrics(model, data.split) if data.split is not None else {}
    for role, qs in questions.items():
        out[f"{role}_accuracy"] = multiple_choice_accuracy(model, qs, recipe.eval.scoring, recipe.eval.batch_size)
    return out


def _describe(model: HookedModel) -> dict:
    return {
        "source": model.source,
        "architecture": str(model.hf_model.config.model_type),
        "n_layers": model.n_layers,
        "d_model": model.d_model,
        "n_params": sum(p.numel() for p in model.hf_model.parameters()),
        "bytes": sum(p.numel() * p.element_size() for p in model.hf_model.parameters()),
        "dtype": str(next(model.hf_model.parameters()).dtype).removeprefix("torch."),
        "vocab_size": _vocab_size(model),
        "device": str(model.device),
    }
