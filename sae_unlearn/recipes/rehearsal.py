"""Rehearse a recipe: every stage of the real run at the real model's full shape, with random
weights, offline (``python -m sae_unlearn recipe RECIPE --rehearse``).

A rehearsal proves everything but the weights' values: names, shapes, formats, dtypes, and each
stage's time and memory at the real size. It builds, in a work folder beside ``--out`` that is
removed afterwards:

- the model, from the real model's ``config.json`` bundled in ``recipes/configs/`` (full width,
  heads, MLP width and vocabulary; :data:`BUNDLED_CONFIGS` maps the recipe's hub id to it), with
  seeded random weights in the recipe's dtype (``from_config``, ``save_pretrained``);
- a byte-level BPE tokenizer trained on the rehearsal's texts (the real vocabularies are not
  available offline); its ids fit inside the config's vocabulary, and the embedding keeps the
  real vocabulary size;
- random SAEs in the release's real on-disk format and width (:data:`SAE_FORMATS`): sae-lens
  folders (``cfg.json``) for ``gpt2-small-res-jb``, Gemma Scope ``params.npz`` in the hub's
  ``layer_{L}/width_16k/…`` folders, Llama Scope ``hyperparams.json`` and
  ``checkpoints/final.safetensors`` in its ``Llama3_1-8B-Base-L{L}R-8x`` folders, read back by the
  loader real SAE folders go through;
- forget/retain texts of the recipe's ``max_chars`` and four-choice questions for data that would
  come from the hub (the ``secrets`` corpus is built in and used as is).

Then the recipe, pointed at these folders through its own settings, runs through the same
:func:`~sae_unlearn.recipes.run._run` as a real run: load, [teach], evaluation, the SAE stage over
every kept hook, unlearning, evaluation, export and the export's reload check, each measured. What
a rehearsal cuts, it cuts through settings only: ``steps`` caps the method's ``steps`` and
``[teach]``'s epochs (whole epochs: ``max(1, steps // steps_per_epoch)``), ``layers`` keeps the
first blocks (the model's depth and the recipe's declared ``n_layers`` both become ``layers``; SAE
hooks of later blocks are dropped), ``texts`` sets the corpora's ``max_texts`` and the questions'
``max_items``. The report's ``rehearsal`` section records the cuts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

from sae_unlearn.data.corpora import corpus_data
from sae_unlearn.models.architectures import architecture
from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.recipes.data import _check_out_dir
from sae_unlearn.recipes.run import _load_data, _only_writer, _run
from sae_unlearn.recipes.spec import MCSource, Recipe, RecipeError, SAESpec, TextSource, load_recipe
from sae_unlearn.saes.pretrained import GEMMA_SCOPE_FILE, LLAMA_SCOPE_CONFIG, LLAMA_SCOPE_WEIGHTS
from sae_unlearn.unlearning import get_method
from sae_unlearn.utils import DictConfig

logger = logging.getLogger(__name__)

CONFIGS_DIR = Path(__file__).parent / "configs"
#: The real ``config.json`` of each model a recipe may name (its hub id), bundled in ``configs/``.
BUNDLED_CONFIGS: dict[str, str] = {
    "openai-community/gpt2": "gpt2-small.json",
    "gpt2": "gpt2-small.json",
    "google/gemma-2-2b": "gemma-2-2b.json",
    "google/gemma-2-2b-it": "gemma-2-2b-it.json",
    "meta-llama/Llama-3.1-8B": "llama-3.1-8b.json",
}
#: How a release stores its SAEs on the hub (each written by the rehearsal in that layout).
SAEFormat = Literal["sae_lens", "gemma_scope", "llama_scope"]
#: Each sae-lens registry release a recipe may name: how its SAEs are stored on the hub, and their
#: number of latents (0: read from the id: Gemma Scope's ``width_16k``, Llama Scope's ``_8x`` of ``d_model``).
SAE_FORMATS: dict[str, tuple[SAEFormat, int]] = {
    "gpt2-small-res-jb": ("sae_lens", 24576),
    "gemma-scope-2b-pt-res-canonical": ("gemma_scope", 0),
    "gemma-scope-2b-pt-res": ("gemma_scope", 0),
    "llama_scope_lxr_8x": ("llama_scope", 0),
    "llama_scope_lxr_32x": ("llama_scope", 0),
}
#: Texts and questions generated per side when neither ``texts`` nor the recipe caps them.
DEFAULT_COUNT = 200
#: Ids of the rehearsal's BPE tokenizer (at most; the model's vocabulary may be smaller).
TOKENIZER_VOCAB = 4096


@dataclass
class RehearsalConfig(DictConfig):
    """What a rehearsal cuts (``None``: nothing, the recipe's own value)."""

    steps: int | None = None
    """Cap every optimiser loop at this many steps: the method's ``steps``, and ``[teach]`` in whole
    epochs (``max(1, steps // steps_per_epoch)``)."""
    layers: int | None = None
    """Keep the first this many blocks; SAE hooks of later blocks are dropped."""
    texts: int | None = None
    """Forget and retain texts (and facts, with the ``secrets`` corpus) per side, and questions per set."""
    seed: int = 0
    """Seed of the random weights, SAEs and generated data."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("steps", "layers", "texts"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} {value} must be >= 1 (leave it out to keep the recipe's own).")


def bundled_config(recipe: Recipe) -> tuple[str, dict]:
    """The bundled file name and ``config.json`` of the recipe's model, checked against ``[model]``."""
    name = BUNDLED_CONFIGS.get(recipe.model.source)
    if name is None:
        raise RecipeError(
            f"no bundled config for model {recipe.model.source!r} of recipe {recipe.name!r}; a rehearsal "
            f"builds the real shape from one of {sorted(BUNDLED_CONFIGS)} (sae_unlearn/recipes/configs/)."
        )
    config = json.loads((CONFIGS_DIR / name).read_text())
    depth = config[architecture(config["model_type"]).layers_key]
    if (config["model_type"], depth) != (recipe.model.architecture, recipe.model.n_layers):
        raise RecipeError(
            f"recipe {recipe.name!r} declares {recipe.model.architecture} with {recipe.model.n_layers} layers, but "
            f"{recipe.model.source}'s config ({name}) is {config['model_type']} with {depth}; fix [model]."
        )
    return name, config


def _sae_format(recipe: Recipe) -> tuple[SAEFormat, int]:
    if not recipe.saes.release:
        raise RecipeError(
            f"recipe {recipe.name!r} reads SAEs from folder {recipe.saes.folder!r}; a rehearsal generates a "
            f"registry release's SAEs ({sorted(SAE_FORMATS)}): name a release and ids in [saes]."
        )
    if recipe.saes.release not in SAE_FORMATS:
        raise RecipeError(
            f"no rehearsal format for SAE release {recipe.saes.release!r}; covered: {sorted(SAE_FORMATS)}."
        )
    return SAE_FORMATS[recipe.saes.release]


def _kept_hooks(recipe: Recipe, n_layers: int) -> list[str]:
    hooks = [h for h in recipe.saes.ids if (hook_layer(h) or 0) < n_layers]
    if not hooks:
        need = min(hook_layer(h) or 0 for h in recipe.saes.ids) + 1
        raise RecipeError(
            f"--layers {n_layers} keeps none of the recipe's SAE hooks {sorted(recipe.saes.ids)}; the shallowest "
            f"needs {need} blocks: use --layers {need} or more."
        )
    return hooks


# ------------------------------------------------------------------------ generated inputs
def _build_model(folder: Path, config: dict, recipe: Recipe, n_layers: int, texts: list[str], seed: int) -> None:
    """A random model of ``config`` with ``n_layers`` blocks in the recipe's dtype, and a BPE tokenizer."""
    import transformers

    from sae_unlearn.models.tokenizer import train_bpe_tokenizer

    config = dict(config, **{architecture(config["model_type"]).layers_key: n_layers})
    hf_config = transformers.AutoConfig.for_model(**config)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=getattr(torch, recipe.model.dtype))
    model.save_pretrained(folder)
    del model
    vocab = int(hf_config.get_text_config().vocab_size)
    tokenizer = train_bpe_tokenizer(texts, min(TOKENIZER_VOCAB, vocab))
    if len(tokenizer) > vocab:
        raise RecipeError(f"the rehearsal tokenizer has {len(tokenizer)} ids, more than the vocabulary {vocab}.")
    positions = config.get("max_position_embeddings", config.get("n_positions"))
    tokenizer.model_max_length = int(positions) if positions else tokenizer.model_max_length
    tokenizer.save_pretrained(folder)


def _write_saes(folder: Path, recipe: Recipe, hooks: list[str], d_in: int, seed: int) -> dict:
    """Random SAEs at ``hooks`` in the release's on-disk format; returns what was written."""
    kind, width = _sae_format(recipe)
    directory = get_pretrained_saes_directory()[recipe.saes.release]
    written = {}
    for i, hook in enumerate(hooks):
        sae_id = recipe.saes.ids[hook]
        gen = torch.Generator().manual_seed(seed + i)
        if kind == "sae_lens":
            from sae_lens import StandardSAE, StandardSAEConfig
            from sae_lens.saes.sae import SAEMetadata

            torch.manual_seed(seed + i)
            cfg = StandardSAEConfig(
                d_in=d_in, d_sae=width, metadata=SAEMetadata(hook_name=hook, model_name=recipe.model.source)
            )
            path = folder / hook
            StandardSAE(cfg).save_model(path)
            d_sae = width
        elif kind == "llama_scope":
            path = folder / str(directory.saes_map[sae_id])  # the hub's layout: Llama3_1-8B-Base-L{L}R-8x
            factor = float((directory.norm_scaling_factor or {}).get(sae_id, 1.0))
            d_sae = _write_llama_scope(path, hook, sae_id, d_in, factor, gen)
        else:
            m = re.search(r"width_(\d+)k", sae_id)
            if m is None:
                raise RecipeError(f"cannot tell the width of Gemma Scope SAE {sae_id!r} (no width_Nk in it).")
            d_sae = int(m.group(1)) * 1024
            path = folder / str(directory.saes_map[sae_id])  # the hub's layout: layer_L/width_16k/average_l0_N
            path.mkdir(parents=True)
            w_enc = torch.randn(d_in, d_sae, generator=gen) / math.sqrt(d_in)
            w_dec = w_enc.T / w_enc.T.norm(dim=-1, keepdim=True)
            np.savez(
                path / GEMMA_SCOPE_FILE,
                W_enc=w_enc.numpy(),
                W_dec=w_dec.numpy(),
                b_enc=np.zeros(d_sae, np.float32),
                b_dec=np.zeros(d_in, np.float32),
                threshold=np.full(d_sae, 0.01, np.float32),
            )
        written[hook] = {"id": sae_id, "format": kind, "path": str(path.relative_to(folder)), "d_sae": d_sae}
    return written


def _write_llama_scope(path: Path, hook: str, sae_id: str, d_in: int, factor: float, gen: torch.Generator) -> int:
    """A random Llama Scope SAE in the hub's layout (``hyperparams.json``, ``checkpoints/final.safetensors``
    of float32 ``nn.Linear`` weights) whose average activation norm is its layer's real one
    (``sqrt(d_model) / factor``, sae-lens's registry's ``norm_scaling_factor``); returns its number of latents."""
    from safetensors.torch import save_file

    m = re.search(r"_(\d+)x$", sae_id)
    if m is None:
        raise RecipeError(f"cannot tell the width of Llama Scope SAE {sae_id!r} (no _8x or _32x in it).")
    d_sae = int(m.group(1)) * d_in
    norm = math.sqrt(d_in) / factor
    (path / "checkpoints").mkdir(parents=True)
    hyperparams = {
        "d_model": d_in,
        "d_sae": d_sae,
        "expansion_factor": d_sae // d_in,
        "hook_point_in": hook,
        "hook_point_out": hook,
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.01,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": norm, "out": norm},
        "apply_decoder_bias_to_pre_encoder": False,
        "use_decoder_bias": True,
        "top_k": 50,
    }
    (path / LLAMA_SCOPE_CONFIG).write_text(json.dumps(hyperparams, indent=2))
    encoder = torch.randn(d_sae, d_in, generator=gen).div_(math.sqrt(d_in))
    decoder = encoder.T.contiguous()
    decoder /= decoder.norm(dim=0, keepdim=True)
    weights = {
        "encoder.weight": encoder,
        "encoder.bias": torch.zeros(d_sae),
        "decoder.weight": decoder,
        "decoder.bias": torch.zeros(d_in),
    }
    save_file(weights, str(path / LLAMA_SCOPE_WEIGHTS))
    return d_sae


def _pieces(pool: list[str], n: int, max_chars: int, rng: random.Random) -> list[str]:
    """``n`` texts of about ``max_chars`` characters, sentences of ``pool`` joined."""
    out = []
    for _ in range(n):
        text = ""
        while len(text) < max_chars:
            text += rng.choice(pool) + " "
        out.append(text.strip())
    return out


def _write_data(folder: Path, recipe: Recipe, n: int | None, seed: int) -> tuple[Recipe, list[str]]:
    """Local files for every source the recipe would read from the hub; the recipe reading them
    (``texts`` cut through ``max_texts``/``max_items``), and the texts the tokenizer learns."""
    # the recipe's own corpus, else the secrets corpus stands in for the texts it would download
    corpus = corpus_data(recipe.data.corpus or "secrets")
    data, ev = recipe.data, recipe.eval
    rng = random.Random(seed)
    if data.corpus:
        data = dataclasses.replace(data, max_texts=n or data.max_texts)
        texts = corpus.forget_texts + corpus.retain_texts
    else:
        texts = []
        pools = {"forget": corpus.forget_texts, "retain": corpus.retain_texts}
        sources: dict[str, TextSource] = {}
        for role, pool in pools.items():
            src = getattr(data, role)
            assert isinstance(src, TextSource)
            count = n or src.max_texts or DEFAULT_COUNT
            pieces = _pieces(pool, count, src.max_chars or 1000, rng)
            path = folder / f"{role}.jsonl"
            path.write_text("".join(json.dumps({src.field: t}) + "\n" for t in pieces))
            sources[role] = dataclasses.replace(src, path=str(path), max_texts=count)
            texts += pieces
        data = dataclasses.replace(data, forget=sources["forget"], retain=sources["retain"])
    split = corpus.split
    questions: dict[str, MCSource] = {}
    for role, facts in (("forget_mc", split.forget), ("control_mc", split.retain)):
        src = getattr(ev, role)
        if src is None:
            continue
        assert isinstance(src, MCSource)
        count = n or src.max_items or DEFAULT_COUNT
        rows: list[dict] = []
        for i in range(count):
            fact = facts[i % len(facts)]
            others = [f.answer.strip() for f in facts if f.attribute == fact.attribute and f.answer != fact.answer]
            choices = rng.sample(sorted(set(others)), 3) if len(set(others)) >= 3 else [*others, "none", "all"][:3]
            answer = rng.randrange(4)
            choices.insert(answer, fact.answer.strip())
            question = fact.prompt.removeprefix("Q: ").removesuffix(" A:")
            rows.append({"question": question, "choices": choices, "answer": answer})
            texts.append(question + " " + " ".join(choices))
        path = folder / f"{role}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        questions[role] = dataclasses.replace(src, path=str(path), max_items=count)
    ev = dataclasses.replace(ev, forget_mc=questions.get("forget_mc"), control_mc=questions.get("control_mc"))
    return dataclasses.replace(recipe, data=data, eval=ev), texts


def _cut_steps(recipe: Recipe, steps: int | None) -> tuple[Recipe, dict]:
    """The method's steps and ``[teach]``'s epochs capped at ``steps`` (settings only)."""
    config = get_method(recipe.method).config_class.from_dict(recipe.settings())
    method_steps = min(steps, config.steps) if steps else config.steps
    recipe = dataclasses.replace(recipe, unlearning={**recipe.unlearning, "steps": method_steps})
    cut = {"unlearning_steps": method_steps}
    if recipe.teach is not None:
        data, _ = _load_data(recipe)
        per_epoch = math.ceil(len(data.forget_texts + data.retain_texts) / recipe.teach.batch_size)
        epochs = max(1, min(recipe.teach.epochs, steps // per_epoch)) if steps else recipe.teach.epochs
        recipe = dataclasses.replace(recipe, teach=dataclasses.replace(recipe.teach, epochs=epochs))
        cut |= {"teach_epochs": epochs, "teach_steps": epochs * per_epoch}
    return recipe, cut


# -------------------------------------------------------------------------------------- run
def rehearse(
    recipe: Recipe | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    config: RehearsalConfig | None = None,
    progress: bool = True,
) -> dict:
    """Rehearse ``recipe`` (see the module docstring) into ``out_dir``; returns the report (also
    ``OUT/report.json``). Every bad input fails before any work, and nothing but ``out_dir`` (and,
    while it runs, a work folder beside it) is written."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    config = config or RehearsalConfig()
    out = recipe.out_dir(out_dir)
    _check_out_dir(out, recipe)
    config_name, hf_config = bundled_config(recipe)
    depth = recipe.model.n_layers
    layers = config.layers or depth
    if layers > depth:
        raise RecipeError(f"--layers {layers} is more than {recipe.model.source}'s {depth} blocks; use 1..{depth}.")
    hooks = _kept_hooks(recipe, layers)
    _sae_format(recipe)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _only_writer(out), tempfile.TemporaryDirectory(prefix=f".{out.name}.rehearsal-", dir=out.parent) as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        rehearsed, texts = _write_data(work / "data", recipe, config.texts, config.seed)
        _build_model(work / "model", hf_config, recipe, layers, texts, config.seed)
        d_in = int(json.loads((work / "model" / "config.json").read_text()).get("hidden_size") or hf_config["n_embd"])
        saes = _write_saes(work / "saes", recipe, hooks, d_in, config.seed)
        model = dataclasses.replace(rehearsed.model, source=str(work / "model"), n_layers=layers)
        rehearsed = dataclasses.replace(rehearsed, model=model, saes=SAESpec(folder=str(work / "saes")))
        rehearsed, steps_cut = _cut_steps(rehearsed, config.steps)
        notes = {
            "bundled_config": config_name,
            "real": {"source": recipe.model.source, "n_layers": depth, "hooks": sorted(recipe.saes.ids)},
            "cuts": {
                "layers": config.layers,
                "steps": config.steps,
                "texts": config.texts,
                "dropped_hooks": sorted(set(recipe.saes.ids) - set(hooks)),
                "declared_n_layers": layers,
                **steps_cut,
            },
            "weights": f"random (seed {config.seed}), {recipe.model.dtype}",
            "tokenizer": f"byte-level BPE trained on the rehearsal's texts (at most {TOKENIZER_VOCAB} ids; the "
            "embedding keeps the real vocabulary)",
            "saes": saes,
            "inputs": "generated in a work folder beside out, removed after the run",
        }
        logger.info("rehearsing %s into %s (work folder %s)", recipe.name, out, work)
        return _run(rehearsed, out, progress, rehearsal=notes)
