"""What a recipe holds, and :func:`load_recipe`: strict TOML parsing (unknown keys with close
matches, types, registry ids checked offline, hooks against SAE ids).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

from sae_unlearn.data.corpora import CORPORA
from sae_unlearn.models.architectures import ARCHITECTURES
from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.models.training import LMTrainConfig
from sae_unlearn.saes import check_pretrained_id
from sae_unlearn.saes.pretrained import LLAMA_SCOPE_SITES
from sae_unlearn.selection.config import SAEStageConfig
from sae_unlearn.unlearning import METHODS, get_method
from sae_unlearn.utils import DictConfig


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
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r}; recipes cover {sorted(ARCHITECTURES)}.")
        if self.n_layers < 1:
            raise ValueError(f"n_layers={self.n_layers} must be >= 1 (the model's number of blocks).")


_LAYER_IN_ID = re.compile(r"(?:layer_|blocks\.)(\d+)")
_HOOK_IN_ID = re.compile(
    r"blocks\.\d+\.(?:mlp\.hook_(?:pre|post)|(?:attn\.)?hook_z|hook_(?:resid_pre|resid_mid|resid_post|mlp_out|attn_out))"
    r"(?![a-z])"
)
#: Gemma Scope (sae-lens's ``gemma_2`` conversion): the site by the repository's kind, as sae-lens names it.
_GEMMA_SCOPE_SITES = (("res", "hook_resid_post"), ("mlp", "hook_mlp_out"), ("att", "attn.hook_z"))


def registry_hook(release: str, sae_id: str) -> str | None:
    """The hook a registry SAE was trained at, known offline from sae-lens's bundled registry, or
    ``None`` when the registry does not tell.

    ``pretrained_saes.yaml`` records each SAE's id and path, not its hook; most ids and paths are
    the TransformerLens hook name itself (``blocks.8.hook_resid_pre``), and Gemma Scope's are
    ``layer_L/…`` in a ``…-res``/``-mlp``/``-att`` repository, which sae-lens turns into
    ``blocks.L.hook_resid_post``/``hook_mlp_out``/``attn.hook_z`` when it loads them.
    Llama Scope's paths are ``Llama3_1-8B-Base-L15R-8x`` (``R``/``M``/``A``: ``hook_resid_post``,
    ``hook_mlp_out``, ``hook_attn_out``, the ``hook_point_in`` of its ``hyperparams.json``).
    """
    entry = get_pretrained_saes_directory().get(release)
    if entry is None or sae_id not in entry.saes_map:
        return None
    path = str(entry.saes_map[sae_id])
    for text in (sae_id, path):
        if m := _HOOK_IN_ID.search(text):
            hook = m.group(0)
            return hook.replace(".hook_z", ".attn.hook_z") if ".attn." not in hook and hook.endswith("hook_z") else hook
    scope = re.search(r"-L(\d+)([RAM])-\d+x$", path)
    if entry.conversion_func == "llama_scope" and scope:
        return f"blocks.{scope.group(1)}.{LLAMA_SCOPE_SITES[scope.group(2)]}"
    layer = re.search(r"layer_(\d+)", path)
    if entry.conversion_func == "gemma_2" and layer and "embedding" not in path:
        for kind, site in _GEMMA_SCOPE_SITES:
            if kind in entry.repo_id:
                return f"blocks.{layer.group(1)}.{site}"
    return None


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
            own = registry_hook(self.release, sae_id)
            if own is not None and own != hook:
                raise ValueError(
                    f"ids[{hook!r}] = {sae_id!r} is the SAE of {own!r} (sae-lens's registry), not of {hook!r}: "
                    f"its latents read another site. Key it by {own!r}, or give the SAE id of {self.release!r} "
                    f"trained at {hook!r}."
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

    corpus: str = ""
    """A registered corpus (:data:`sae_unlearn.data.corpora.CORPORA`: ``secrets``, the toolkit's
    fictitious people, texts and their facts, nothing to download; ``tofu-mini`` reads the TOFU data)."""
    forget: TextSource | None = None
    """What to unlearn (e.g. the WMDP cyber forget corpus)."""
    retain: TextSource | None = None
    """What to keep (e.g. WikiText)."""
    max_texts: int = 0
    """With ``corpus``: keep a seeded sample of this many forget texts, retain texts, forget facts and
    retain facts each (0: all). Sources set their own ``max_texts``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.corpus and self.corpus not in CORPORA:
            close = difflib.get_close_matches(self.corpus, list(CORPORA), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"corpus={self.corpus!r} is not registered{hint}; registered: {', '.join(CORPORA)}.")
        if self.max_texts < 0:
            raise ValueError(f"max_texts={self.max_texts} must be >= 0 (0: all).")
        if self.max_texts and not self.corpus:
            raise ValueError("max_texts applies to corpus; set max_texts in [data.forget] and [data.retain].")
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
class SelectionSpec(SAEStageConfig):
    """The ``[selection]`` section: the SAE stage's config
    (:class:`~sae_unlearn.selection.config.SAEStageConfig`, passed to
    :func:`~sae_unlearn.pipeline.sae_stage` as it is), streaming by default."""

    streaming: bool = True
    """Select in one streaming pass that stores no activations (memory independent of the number
    of tokens; :mod:`sae_unlearn.selection.streaming`) instead of capturing every token first."""


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
    """The method's settings over its config's defaults (the hook is chosen by the selection)."""
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
        if get_method(self.method).reasoning:
            raise ValueError(
                f"method={self.method!r} unlearns reasoning traces and needs a model that reasons under a trigger; "
                "recipes unlearn texts and facts of a plain model (corpus 'secrets' or [data.forget]/[data.retain]). "
                "Use method = 'sspu' or 'rmu', or run R²MU through the pipeline on zoo model 'secrets-reasoning'."
            )
        config_class = get_method(self.method).config_class
        self.unlearning = _as_floats(config_class, self.unlearning)
        allowed = [f.name for f in fields(config_class)]  # type: ignore[arg-type]
        for key in self.unlearning:
            if key == "hook":
                raise ValueError("[unlearning] hook: the hook is chosen by the selection among the SAEs' hooks.")
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                raise ValueError(f"unknown [unlearning] key {key!r}" + _hint(close) + f" Valid keys: {allowed}.")
        config_class.from_dict(self.settings())  # types and ranges, now

    def settings(self) -> dict:
        """The method's settings over its config's defaults: the recipe's seed, then ``[unlearning]``."""
        return {"seed": self.seed, **self.unlearning}

    def out_dir(self, out_dir: str | os.PathLike | None = None) -> Path:
        """The output folder, absolute: ``out_dir`` (``--out``), else the recipe's ``out``, else
        ``runs/<name>``, relative to the working directory.

        The recipe's own ``out`` may not climb out of the working directory (``../x``): whoever
        runs a recipe file someone else wrote would not expect a write outside the folder they run
        it from. An absolute ``out``, or ``--out`` typed on the command line, is taken as written."""
        if out_dir is None and self.out and not Path(self.out).expanduser().is_absolute():
            cwd = Path.cwd().resolve()
            target = (cwd / self.out).resolve()
            if not target.is_relative_to(cwd):
                raise RecipeError(
                    f"out={self.out!r} leaves the working directory {cwd} (it is {target}); a recipe writes "
                    f"inside the folder it runs from. Write out = {str(target)!r} (absolute) if that is meant, "
                    "or pass --out."
                )
        return Path(out_dir or self.out or f"runs/{self.name}").expanduser().absolute()


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
    recipe: Recipe,
    model: str | None = None,
    saes: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Recipe:
    """The recipe with another model source (e.g. a local copy), SAE folder, device or dtype."""
    spec = recipe.model
    allowed = typing.get_args(typing.get_type_hints(ModelSpec)["dtype"])
    if dtype is not None and dtype not in allowed:
        raise RecipeError(f"--dtype {dtype!r}; choose one of {allowed}.")
    if model or device or dtype:
        # rebuilt, not replaced, so that ModelSpec checks the new values as it checks a recipe file's
        try:
            spec = ModelSpec(
                **{
                    **dataclasses.asdict(spec),
                    "source": model or spec.source,
                    "device": device or spec.device,
                    "dtype": dtype or spec.dtype,
                }
            )
        except (TypeError, ValueError) as e:
            raise RecipeError(f"recipe {recipe.name!r}: {e}") from None
    return dataclasses.replace(recipe, model=spec, saes=SAESpec(folder=saes) if saes else recipe.saes)
