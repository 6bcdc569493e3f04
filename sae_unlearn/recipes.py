"""Recipes: ready configs for published settings, each run with one command.

``python -m sae_unlearn recipe recipes/NAME.toml [--out DIR] [--check]``

A recipe (TOML, under ``recipes/``) names the model (hub id or local folder, with its architecture
and depth), pretrained SAEs (a sae-lens registry release and ``{hook: sae_id}``, or a folder), the
forget and retain corpora (the toolkit's ``secrets`` corpus, or texts from a local file or a hub
dataset), multiple-choice evaluations (WMDP-/MMLU-shaped), the method and its settings, an optional
``[teach]`` fine-tune (for a model that has never seen the forget facts) and, under ``[expected]``,
what a run costs.

:func:`load_recipe` is strict: an unknown key names its close match, every value is type-checked,
each registry ``release``/``sae_id`` pair is checked offline against sae-lens's bundled registry
(close matches named), and each hook must agree with its SAE id's layer. :func:`run_recipe` checks
the output folder, the data files and the hub's reachability before any heavy work, then loads the
model and SAEs, resolves the recipe on the loaded model (:func:`check_recipe`), teaches, evaluates,
runs the SAE stage, unlearns, evaluates again and writes the output folder atomically
(``report.json``, the recipe, the exported model): on any failure nothing is written.
``--check`` (``dry_run=True``) resolves hooks and parameter names on a tiny random model of the
declared architecture and depth (names depend only on those), offline, and writes nothing.

Relative paths in a recipe are relative to the directory the command runs from.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import os
import random
import re
import tempfile
import time
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch

from sae_unlearn.atomic import atomic_directory, read_json, write_json_atomic
from sae_unlearn.evaluation.multiple_choice import MCQuestion, load_mc_questions, multiple_choice_accuracy
from sae_unlearn.export import CARD_JSON, export_model
from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.models.loading import HookedModel, hub_reachable, load_model
from sae_unlearn.models.training import LMTrainConfig, train_causal_lm
from sae_unlearn.pipeline import DEFAULT_UNLEARNING, PipelineData, knowledge_metrics, sae_stage
from sae_unlearn.saes import check_pretrained_id, load_saes
from sae_unlearn.selection.latents import Scorer
from sae_unlearn.selection.layers import LayerRule
from sae_unlearn.unlearning import METHODS, UnlearningResult, default_params, get_method
from sae_unlearn.unlearning.base import resolve_params
from sae_unlearn.utils import DictConfig, check_forget_retain, run_environment

logger = logging.getLogger(__name__)


class RecipeError(ValueError):
    """A recipe that cannot run as written: the message names the value and the fix."""


# ----------------------------------------------------------------------------------- the recipe
@dataclass
class ModelSpec(DictConfig):
    """The model to unlearn."""

    source: str = ""
    """Hub id (``google/gemma-2-2b-it``) or a local Hugging Face folder."""
    architecture: str = ""
    """Hugging Face ``model_type`` (``gemma2``, ``gpt2``, …): checked against the loaded model; ``--check``
    builds a tiny random model of it."""
    n_layers: int = 0
    """Transformer blocks (checked likewise)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Parameter dtype (see :func:`~sae_unlearn.models.load_model`: SAEs and the trained matrices'
    master copies stay float32)."""
    device: str = "auto"
    """``auto`` (GPU when present), ``cpu`` or ``cuda``: where the model (or its inputs, with
    ``device_map``) lives."""
    device_map: str = ""
    """Place the model across GPUs with accelerate (``auto``, ``balanced``); empty: one device."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.source:
            raise ValueError("source is empty; give a hub id (e.g. 'openai-community/gpt2') or a model folder.")
        if self.architecture not in TWIN_CONFIGS:
            raise ValueError(f"architecture={self.architecture!r}; recipes cover {sorted(TWIN_CONFIGS)}.")
        if self.n_layers < 1:
            raise ValueError(f"n_layers={self.n_layers} must be >= 1 (the model's number of blocks).")


_LAYER_IN_ID = re.compile(r"(?:layer_|blocks\.)(\d+)")


@dataclass
class SAESpec(DictConfig):
    """Pretrained SAEs: registry ``release`` and ``ids``, or a ``folder``."""

    release: str = ""
    """sae-lens registry release (``gemma-scope-2b-pt-res-canonical``); needs the hub at run time."""
    ids: dict[str, str] = field(default_factory=dict)
    """``{hook: sae_id}``: the SAE of ``release`` used at each hook; the layer picked among them."""
    folder: str = ""
    """Or a folder of SAEs (anything :func:`~sae_unlearn.saes.load_saes` reads) instead of ``release``/``ids``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.folder) == bool(self.release or self.ids):
            raise ValueError("give either release and ids (sae-lens registry) or folder, not both or neither.")
        if self.folder:
            return
        if not self.release or not self.ids:
            raise ValueError("release and ids go together: ids = {hook = sae_id, …} of that release.")
        for hook, sae_id in self.ids.items():
            if not isinstance(sae_id, str):
                raise TypeError(f"ids[{hook!r}]={sae_id!r} must be a string (an SAE id of {self.release!r}).")
            layer = hook_layer(hook)
            if layer is None:
                raise ValueError(f"ids key {hook!r} is not a hook name; use e.g. 'blocks.12.hook_resid_post'.")
            check_pretrained_id(self.release, sae_id)
            m = _LAYER_IN_ID.search(sae_id)
            if m and int(m.group(1)) != layer:
                raise ValueError(
                    f"ids[{hook!r}] = {sae_id!r} is an SAE of layer {m.group(1)}, not {layer}; "
                    f"pair each hook with its layer's SAE."
                )

    @property
    def sources(self) -> dict[str, str]:
        """``{hook: "release:sae_id"}`` (empty for a folder)."""
        return {h: f"{self.release}:{i}" for h, i in self.ids.items()}


@dataclass
class DataSource(DictConfig):
    """Where data comes from: a local file, else a hub dataset (online)."""

    path: str = ""
    """Local file; used when it exists."""
    hub: str = ""
    """Hub dataset read with ``datasets.load_dataset`` when ``path`` is missing (needs the network)."""
    hub_config: str = ""
    """The dataset's configuration (``cyber-forget-corpus``, ``wikitext-2-raw-v1``, …)."""
    hub_split: str = "train"
    """The split to read."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path and not self.hub:
            raise ValueError("give path (a local file) or hub (a dataset id), or both.")

    def describe(self) -> str:
        """The hub dataset, e.g. ``cais/wmdp (wmdp-cyber, test)``."""
        return f"{self.hub} ({self.hub_config + ', ' if self.hub_config else ''}{self.hub_split})"

    def local(self) -> Path | None:
        """The local file when it exists."""
        return Path(self.path).expanduser() if self.path and Path(self.path).expanduser().is_file() else None

    def hub_rows(self) -> list[dict]:
        """Every row of the hub split (downloads once into the ``datasets`` cache)."""
        if not self.hub:
            raise RecipeError(f"{self.path} not found and no hub dataset is named; create the file.")
        import datasets

        return list(datasets.load_dataset(self.hub, self.hub_config or None, split=self.hub_split))


@dataclass
class TextSource(DataSource):
    """Texts: JSON Lines (one ``field`` per row), a JSON list, or plain text (one text per line)."""

    field: str = "text"
    """The text column (JSON Lines rows, hub rows)."""
    max_chars: int = 0
    """Split longer texts at whitespace into pieces of at most this many characters (0: keep whole)."""
    min_chars: int = 1
    """Drop pieces shorter than this (blank lines, headings)."""
    max_texts: int = 0
    """Keep this many pieces, a seeded sample in corpus order (0: all)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_chars", "min_chars", "max_texts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")


@dataclass
class MCSource(DataSource):
    """Multiple-choice questions (``question``, ``choices``, ``answer`` index), as WMDP and MMLU."""

    hub_split: str = "test"
    """The split to read."""
    max_items: int = 0
    """Keep this many questions, a seeded sample (0: all)."""


@dataclass
class DataSpec(DictConfig):
    """Forget and retain texts: the built-in ``corpus``, or ``forget`` and ``retain`` sources."""

    corpus: Literal["", "secrets"] = ""
    """``secrets``: the toolkit's corpus of fictitious people (texts and their facts, nothing to download)."""
    forget: TextSource | None = None
    """What to unlearn (e.g. the WMDP cyber forget corpus)."""
    retain: TextSource | None = None
    """What to keep (e.g. WikiText)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if bool(self.corpus) == (self.forget is not None or self.retain is not None):
            raise ValueError("give corpus = 'secrets', or [data.forget] and [data.retain], not both or neither.")
        if not self.corpus and (self.forget is None or self.retain is None):
            raise ValueError("give both [data.forget] and [data.retain].")


@dataclass
class EvalSpec(DictConfig):
    """Multiple-choice accuracy before and after unlearning (with ``secrets``, its facts are scored too)."""

    forget_mc: MCSource | None = None
    """Questions on the forget topic (WMDP-Cyber): accuracy should fall toward chance."""
    control_mc: MCSource | None = None
    """Control questions (MMLU): accuracy should stay."""
    scoring: Literal["letter", "choice_text"] = "letter"
    """``letter`` (lm-evaluation-harness's zero-shot format) or ``choice_text``."""
    batch_size: int = 8
    """Prompts per forward pass (full-vocabulary logits: keep it small for large vocabularies)."""


@dataclass
class SelectionSpec(DictConfig):
    """The SAE stage's settings (:func:`~sae_unlearn.pipeline.sae_stage`)."""

    n_latents: int = 64
    """Relevant and irrelevant latents selected."""
    scorer: Scorer = "squared_mean_ratio"
    """Latent scorer."""
    layer_rule: LayerRule = "deepest_tied"
    """How the layer is chosen among the SAEs' hooks."""
    batch_size: int = 64
    """Texts per capture forward pass."""
    streaming: bool = True
    """Select in two streaming passes that store no activations (memory independent of the number
    of tokens; :mod:`sae_unlearn.selection.streaming`) instead of capturing every token first."""
    max_length: int | None = None
    """Truncate texts to this many tokens (default: the model's context)."""


@dataclass
class Expected(DictConfig):
    """What a run costs: documentation, shown next to the measured values in the report."""

    gpu: str = ""
    """The GPU the numbers are for."""
    gpu_memory_gb: float = 0.0
    """Peak GPU memory."""
    cpu_memory_gb: float = 0.0
    """Peak host memory."""
    disk_gb: float = 0.0
    """Downloads plus the exported model."""
    minutes: float = 0.0
    """Wall time after downloads."""
    measured: bool = False
    """Whether the numbers were measured (otherwise estimated; ``basis`` says how)."""
    basis: str = ""
    """How the numbers were obtained."""


@dataclass
class Recipe(DictConfig):
    """A whole run: model, SAEs, data, method and settings, evaluation, expected cost."""

    name: str
    """Short name (also the default output folder's)."""
    model: ModelSpec
    saes: SAESpec
    data: DataSpec
    description: str = ""
    """What the setting is and where it comes from."""
    method: str = "sspu"
    """A registered unlearning method (``sspu``, ``rmu``)."""
    out: str = ""
    """Output folder (must not exist); default ``runs/<name>``."""
    seed: int = 0
    """Seed of data sampling (and the method's, unless ``[unlearning]`` sets one)."""
    selection: SelectionSpec = field(default_factory=SelectionSpec)
    unlearning: dict = field(default_factory=dict)
    """The method's settings over ``DEFAULT_UNLEARNING`` (the hook is chosen by the selection)."""
    teach: LMTrainConfig | None = None
    """Fine-tune on every forget and retain text first (a model that never saw the facts)."""
    eval: EvalSpec = field(default_factory=EvalSpec)
    expected: Expected = field(default_factory=Expected)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name:
            raise ValueError("name is empty; give the recipe a short name.")
        if not isinstance(self.unlearning, dict):
            raise TypeError(f"unlearning={self.unlearning!r} must be a table of the method's settings.")
        if self.method not in METHODS:
            close = difflib.get_close_matches(self.method, list(METHODS), n=1)
            raise ValueError(
                f"method={self.method!r} is not registered; choose one of {sorted(METHODS)}" + _hint(close)
            )
        config_class = get_method(self.method).config_class
        self.unlearning = _as_floats(config_class, self.unlearning)
        allowed = [f.name for f in fields(config_class)]
        for key in self.unlearning:
            if key == "hook":
                raise ValueError("[unlearning] hook: the hook is chosen by the selection among the SAEs' hooks.")
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                raise ValueError(f"unknown [unlearning] key {key!r}" + _hint(close) + f" Valid keys: {allowed}.")
        config_class.from_dict(self.settings())  # types and ranges, now

    def settings(self) -> dict:
        """The method's settings: ``DEFAULT_UNLEARNING``, the recipe's seed, then ``[unlearning]``."""
        return {**DEFAULT_UNLEARNING, "seed": self.seed, **self.unlearning}

    def out_dir(self, out_dir: str | os.PathLike | None = None) -> Path:
        return Path(out_dir or self.out or f"runs/{self.name}").expanduser()


def _hint(close: list[str]) -> str:
    return f"; did you mean {close[0]!r}?" if close else "."


def _as_floats(cls: type, values: dict) -> dict:
    """``values`` with whole numbers given for ``float`` fields of ``cls`` as floats (TOML ``alpha = 1200``)."""
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for key, value in values.items():
        hint = hints.get(key)
        floats = hint is float or (
            typing.get_origin(hint) in (typing.Union, types.UnionType) and float in typing.get_args(hint)
        )
        if floats and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass in a field's annotation (``X`` or ``X | None``), if any."""
    for h in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(h):
            return h  # type: ignore[return-value]
    return None


def _build(cls: type, table: Any, section: str) -> Any:
    """``cls`` from a TOML table: unknown keys name their close match, nested tables are built too."""
    where = f"[{section}]" if section else "the top level"
    if not isinstance(table, dict):
        raise RecipeError(f"{where} must be a table of keys, not {table!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    missing = [
        f.name for f in fields(cls) if f.name not in table and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise RecipeError(f"{where} lacks {missing}; see recipes/ for complete examples.")
    kwargs = {}
    for key, value in table.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            raise RecipeError(f"unknown key {key!r} in {where}" + _hint(close) + f" Valid keys: {names}.")
        sub = _dataclass_of(hints[key])
        kwargs[key] = _build(sub, value, f"{section}.{key}" if section else key) if sub else value
    try:
        return cls(**_as_floats(cls, kwargs))
    except RecipeError:
        raise
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}: {e}") from None


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and check a recipe file (see the module docstring); raises :class:`RecipeError`."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found; the ready ones are in recipes/.")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path} is not valid TOML: {e}.") from None
    try:
        return _build(Recipe, table, "")
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None


def with_overrides(
    recipe: Recipe, model: str | None = None, saes: str | None = None, device: str | None = None
) -> Recipe:
    """The recipe with another model source (e.g. a local copy), SAE folder or device."""
    spec = recipe.model
    if model or device:
        spec = dataclasses.replace(spec, source=model or spec.source, device=device or spec.device)
    return dataclasses.replace(recipe, model=spec, saes=SAESpec(folder=saes) if saes else recipe.saes)


# ------------------------------------------------------------------------ hooks and parameters
#: A tiny config per architecture: hook and parameter names depend only on architecture and depth.
TWIN_CONFIGS: dict[str, tuple[str, dict]] = {
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_head": 2, "n_positions": 64}),
    "gemma2": (
        "Gemma2Config",
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 16,
        },
    ),
    "llama": ("LlamaConfig", {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}),
    "qwen2": ("Qwen2Config", {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}),
    "gpt_neox": ("GPTNeoXConfig", {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}),
}
_LAYER_KEY = {"gpt2": "n_layer"}


def twin_model(architecture: str, n_layers: int) -> HookedModel:
    """A random model of ``architecture`` with ``n_layers`` blocks and a tiny width (on the CPU)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    if architecture not in TWIN_CONFIGS:
        raise RecipeError(f"no twin for architecture {architecture!r}; covered: {sorted(TWIN_CONFIGS)}.")
    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + "the a of to and in is it".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    cls_name, kwargs = TWIN_CONFIGS[architecture]
    config = getattr(transformers, cls_name)(
        vocab_size=len(vocab), **kwargs, **{_LAYER_KEY.get(architecture, "num_hidden_layers"): n_layers}
    )
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
    hooks = hooks if hooks is not None else list(recipe.saes.ids) or list(load_saes(recipe.saes.folder))
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


# ------------------------------------------------------------------------------------- data
def _split_text(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most ``max_chars`` characters, cut at whitespace where possible."""
    text = text.strip()
    if not max_chars or len(text) <= max_chars:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + max_chars)
        if end < len(text):
            cut = text.rfind(" ", start, end)
            end = cut if cut > start else end
        pieces.append(text[start:end].strip())
        start = end
    return pieces


def _sample(items: list, n: int, seed: int) -> list:
    """``n`` items drawn with ``seed``, in their original order (all when ``n`` is 0 or more than there are)."""
    if not n or n >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def load_texts(source: TextSource, seed: int = 0) -> list[str]:
    """The texts of a source, split, filtered and sampled as it says."""
    path = source.local()
    if path is None:
        rows: list = source.hub_rows()
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.suffix == ".json":
        rows = json.loads(path.read_text())
    else:
        rows = path.read_text().splitlines()
    texts = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            if source.field not in row:
                raise RecipeError(
                    f"{path or source.describe()}: row {i} has no {source.field!r} (keys {sorted(row)[:8]})."
                )
            row = row[source.field]
        if not isinstance(row, str):
            raise RecipeError(f"{path or source.describe()}: row {i} is {type(row).__name__}, not a text.")
        texts += [t for t in _split_text(row, source.max_chars) if len(t) >= max(1, source.min_chars)]
    if not texts:
        raise RecipeError(f"{path or source.describe()} gave no texts of at least {source.min_chars} characters.")
    return _sample(texts, source.max_texts, seed)


def load_questions(source: MCSource, seed: int = 0) -> list[MCQuestion]:
    """The questions of a source, sampled as it says."""
    path = source.local()
    if path is not None:
        questions = load_mc_questions(path)
    else:
        rows = source.hub_rows()
        questions = [MCQuestion(str(r["question"]), tuple(map(str, r["choices"])), int(r["answer"])) for r in rows]
    return _sample(questions, source.max_items, seed)


def _needs_hub(recipe: Recipe) -> list[str]:
    """What must come from the hub (nothing local stands in for it)."""
    needs = []
    if not Path(recipe.model.source).expanduser().exists():
        needs.append(f"model {recipe.model.source} (or pass --model with a local copy)")
    if recipe.saes.release:
        needs.append(f"SAEs of {recipe.saes.release} (or pass --saes with a local folder)")
    elif not Path(recipe.saes.folder).expanduser().is_dir():
        raise RecipeError(f"SAE folder {recipe.saes.folder} not found; pass a folder of SAEs or registry ids.")
    sources = [recipe.data.forget, recipe.data.retain, recipe.eval.forget_mc, recipe.eval.control_mc]
    for s in sources:
        if s is not None and s.local() is None:
            if not s.hub:
                raise RecipeError(f"{s.path} not found and no hub dataset is named; create the file.")
            needs.append(f"dataset {s.describe()} (or save it as {s.path or 'a local file named by path'})")
    return needs


def _check_out_dir(out: Path) -> None:
    if out.exists():
        raise RecipeError(f"output folder {out} already exists; choose another --out (a recipe never overwrites).")
    parent = next(p for p in out.absolute().parents if p.exists())
    if not os.access(parent, os.W_OK):
        raise RecipeError(f"cannot create {out}: {parent} is not writable; choose another --out.")


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
    _check_out_dir(out)
    needs = _needs_hub(recipe)
    if dry_run:
        return _dry_run(recipe, out, needs)
    if needs and (os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable()):
        raise RecipeError(
            "the Hugging Face hub cannot be reached (or HF_HUB_OFFLINE=1), but the recipe needs it for: "
            + "; ".join(needs)
        )
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    data, questions = _load_data(recipe)
    model = load_model(
        recipe.model.source,
        device=recipe.model.device,
        dtype=recipe.model.dtype,
        device_map=recipe.model.device_map or None,
    )
    saes = _load_saes(recipe, str(model.device))
    check_recipe(recipe, model, list(saes))
    timing["load_s"] = time.perf_counter() - t0
    report: dict = {"recipe": recipe.to_dict(), "environment": run_environment(), "model": _describe(model)}
    report["data"] = {"n_forget_texts": len(data.forget_texts), "n_retain_texts": len(data.retain_texts)}
    if recipe.teach is not None:
        t = time.perf_counter()
        report["teach"] = {"epoch_losses": teach(model, data.forget_texts + data.retain_texts, recipe.teach, progress)}
        timing["teach_s"] = time.perf_counter() - t
    t = time.perf_counter()
    report["before"] = _metrics(model, recipe, data, questions)
    timing["eval_before_s"] = time.perf_counter() - t
    t = time.perf_counter()
    sel = recipe.selection
    stage = sae_stage(
        model,
        data,
        None,
        n_latents=sel.n_latents,
        scorer=sel.scorer,
        batch_size=sel.batch_size,
        progress=progress,
        layer_rule=sel.layer_rule,
        saes=saes,
        streaming=sel.streaming,
        max_length=sel.max_length,
    )
    timing["sae_stage_s"] = time.perf_counter() - t
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
    t = time.perf_counter()
    settings = {**recipe.settings(), "hook": result.hook}
    method = get_method(recipe.method).from_stage(stage, settings)
    res = method.apply(model, data.forget_texts, data.retain_texts, progress=progress)
    timing["unlearning_s"] = time.perf_counter() - t
    report["unlearning"] = {
        "settings": res.config,
        "params": res.params,
        "steering_coef": res.steering_coef,
        "stopped_early": res.stopped_early,
        "mean_step_seconds": res.mean_step_seconds,
        "final_losses": res.history[-1] if res.history else {},
        **{k: v for k, v in res.extra.items() if not isinstance(v, dict)},
    }
    t = time.perf_counter()
    report["after"] = _metrics(model, recipe, data, questions)
    timing["eval_after_s"] = time.perf_counter() - t
    if torch.cuda.is_available():
        report["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    report["expected"] = recipe.expected.to_dict()
    with atomic_directory(out) as tmp:  # the folder appears only complete
        t = time.perf_counter()
        report["export"] = _export(model, tmp, out, recipe, report, res)
        timing["export_s"] = time.perf_counter() - t
        timing["total_s"] = time.perf_counter() - t0
        report["timing"] = timing
        write_json_atomic(tmp / "report.json", report)
        write_json_atomic(tmp / "recipe.json", recipe.to_dict())
    logger.info("recipe %s done in %.0fs: %s", recipe.name, timing["total_s"], out)
    return report


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
    if recipe.data.corpus == "secrets":
        from sae_unlearn.data.secrets import SecretsCorpus

        corpus = SecretsCorpus()
        data = PipelineData(recipe.name, corpus.split(), corpus.forget_texts(), corpus.retain_texts())
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
        return load_saes(recipe.saes.folder, device=device)
    saes = {}
    for hook, source in recipe.saes.sources.items():
        loaded = load_saes(source, hook=hook, device=device)
        own = next(iter(loaded))
        if own != hook:
            raise RecipeError(f"{source} is an SAE of {own!r}, not {hook!r}; fix [saes.ids].")
        saes[hook] = loaded[own]
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
        "device": str(model.device),
    }


# -------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe file (the ready ones: recipes/*.toml)")
    parser.add_argument("--out", help="output folder, must not exist (default: the recipe's out)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check: the recipe, output folder, local data, and its hooks and parameter names on a tiny "
        "random model of its architecture (offline); writes nothing",
    )
    parser.add_argument("--model", help="a local copy of the model (or another hub id) instead of the recipe's")
    parser.add_argument("--saes", help="a folder of SAEs instead of the recipe's registry ids")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the recipe's)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run (or ``--check``) a recipe from the command line; a bad recipe fails before any work."""
    try:
        recipe = with_overrides(load_recipe(args.recipe), args.model, args.saes, args.device)
        result = run_recipe(recipe, args.out, dry_run=args.check, progress=args.progress)
    except (RecipeError, FileNotFoundError, FileExistsError, ConnectionError) as e:
        if parser is not None:
            parser.error(str(e))
        print(f"error: {e}")
        return 2
    if args.check:
        print(json.dumps(result, indent=2))
        print(f"recipe {recipe.name!r} is ready to run ({result['checked_on']}).")
    else:
        print(json.dumps({k: result[k] for k in ("before", "after", "selection", "timing", "export")}, indent=2))
    return 0
