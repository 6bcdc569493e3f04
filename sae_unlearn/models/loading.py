"""One loader for every model: a hub name (online) or a local Hugging Face directory.

:func:`load_model` loads the Hugging Face causal LM and its tokenizer, then wraps it with
TransformerLens's ``TransformerBridge`` so that TransformerLens hook names
(``blocks.{l}.hook_resid_post``, ``blocks.{l}.mlp.hook_post``, …) address its activations.
The bridge wraps the HF modules in place: ``HookedModel.hf_model`` *is* the model the bridge
runs, so a weight update through either lands in the real HF model, and hooks fire even for
plain HF calls such as ``generate``. The source directory is only read, never written.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge
from transformers import (
    CONFIG_MAPPING,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from sae_unlearn.intervention_runtime import INTERVENTION_DIR, SPEC_FILE, base_config_dict
from sae_unlearn.models.hooks import validate_hook_names
from sae_unlearn.utils import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

#: The most bytes of logits (in the model's dtype), and of their float32 log-softmax, that
#: :meth:`HookedModel.next_token_logprobs` holds at once.
LOGITS_CHUNK_BYTES = 64 * 2**20
_WRAPPER_SEGMENT = "._original_component"


#: Installs a saved intervention (an exported model's ``intervention/``) on a loaded model. The layer
#: that owns interventions registers it (:mod:`sae_unlearn.interventions`, on import), so that this
#: floor imports nothing above it.
_INSTALLER: Callable[[HookedModel, Path], None] | None = None


def register_intervention_installer(install: Callable[[HookedModel, Path], None]) -> None:
    """Register what :func:`load_model` calls on a model folder that carries a saved intervention."""
    global _INSTALLER  # noqa: PLW0603 - one slot, filled once by sae_unlearn.interventions
    _INSTALLER = install


def _unwrap(name: str) -> str:
    """A bridge-wrapped parameter name → the original HF name."""
    return name.replace(_WRAPPER_SEGMENT, "")


@dataclass
class TokenBatch:
    """Right-padded token ids of a batch of texts and the mask of real tokens."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device))


class HookedModel:
    """A Hugging Face causal LM addressable by TransformerLens hook names.

    Attributes:
        bridge: the ``TransformerBridge`` (hooks, ``run_with_cache``, ``hooks()`` context).
        hf_model: the wrapped Hugging Face model (same parameters as the bridge).
        tokenizer: its tokenizer (BOS prepended, right padding).
        source: the hub name or local directory it was loaded from.
    """

    def __init__(
        self, bridge: TransformerBridge, hf_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: str
    ):
        self.bridge = bridge
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.source = source
        self._hf_keys: list[str] | None = None
        self.intervention = None
        """The installed :class:`~sae_unlearn.interventions.SAEIntervention`, if any (weight-free
        methods; every forward pass goes through it)."""

    # ----------------------------------------------------------- properties
    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def n_ctx(self) -> int:
        """Context length: the most tokens (BOS included) one text may have."""
        return int(self.bridge.cfg.n_ctx)

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype (activations come in it)."""
        return next(self.hf_model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.hf_model.parameters()).device

    @property
    def prepends_bos(self) -> bool:
        """Whether the tokenizer puts its BOS token first (the zoo's, Llama's and Gemma's do; GPT-2's does not)."""
        bos = self.tokenizer.bos_token_id
        ids = self.tokenizer("a")["input_ids"]
        return bos is not None and len(ids) > 0 and ids[0] == bos

    @property
    def hook_names(self) -> list[str]:
        """Every hook name the model exposes."""
        return list(self.bridge.hook_dict.keys())

    def validate_hooks(self, names: list[str] | str) -> list[str]:
        """Check hook names exist; raises ``HookNameError`` listing the valid names."""
        return validate_hook_names(names, self.bridge.hook_dict.keys(), self.n_layers)

    def __repr__(self) -> str:
        n_params = sum(p.numel() for p in self.hf_model.parameters())
        iv = self.intervention
        extra = f", intervention={iv.method or iv.rule}@{iv.hook}" if iv is not None else ""
        return (
            f"HookedModel({self.hf_model.config.model_type}, {self.n_layers} layers, d_model={self.d_model}, "
            f"{n_params / 1e6:.2f}M params, source={self.source!r}, device={self.device}{extra})"
        )

    # ---------------------------------------------------------- intervention
    def set_intervention(self, intervention) -> None:
        """Install an :class:`~sae_unlearn.interventions.SAEIntervention` (replacing any other): from
        now on every forward pass, ``generate`` included, edits its hook's activation through its SAE.

        The SAE is checked against the model first (hook exists, SAE trained there, width matches),
        and its metadata read against the model (:mod:`sae_unlearn.saes.inputs`; what cannot be
        honoured warns).
        """
        intervention.prepare(self)  # the checks are the intervention's (the layer that owns SAEs)
        self.clear_intervention()
        intervention.install(self)
        self.intervention = intervention

    def clear_intervention(self) -> None:
        """Remove the installed intervention (the model is its weights alone again)."""
        if self.intervention is not None:
            self.intervention.remove()
            self.intervention = None

    # ------------------------------------------------------------ tokenising
    def tokenize(self, texts: list[str] | str, max_length: int | None = None, bos: bool | None = None) -> TokenBatch:
        """Tokenize texts, right-padded.

        ``bos``: ``None`` (default) tokenizes as the tokenizer does (BOS first when it adds one);
        ``True`` puts the BOS token first where the tokenizer adds none (GPT-2's), ``False`` drops
        the one it adds: how an SAE's ``prepend_bos`` is honoured (:mod:`sae_unlearn.saes.inputs`).
        A text longer than the model's context (:attr:`n_ctx`) raises ``ValueError`` naming it,
        unless ``max_length`` asks for truncation (it must be at most ``n_ctx``; BOS included).
        """
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise ValueError("no texts given to tokenize.")
        if max_length is not None and not 1 <= max_length <= self.n_ctx:
            raise ValueError(f"max_length={max_length} must be in [1, n_ctx={self.n_ctx}].")
        tok = self.tokenizer
        shift = 0 if bos is None or bos == self.prepends_bos else (1 if bos else -1)  # tokens added in front
        if shift == 1 and tok.bos_token_id is None:
            raise ValueError(f"bos=True, but the tokenizer of {self.source!r} has no BOS token; pass bos=None.")
        if shift == 1 and max_length == 1:
            raise ValueError("max_length=1 leaves no room for a token after the BOS; use max_length >= 2.")
        inner = None if max_length is None else max_length - shift
        old_side = tok.padding_side
        tok.padding_side = "right"
        try:
            enc = tok(list(texts), return_tensors="pt", padding=True, truncation=inner is not None, max_length=inner)
        finally:
            tok.padding_side = old_side
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if shift == 1:  # right padding: every text starts at column 0, so the BOS column goes first
            ids = torch.cat([torch.full_like(ids[:, :1], int(tok.bos_token_id)), ids], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        elif shift == -1:
            ids, mask = ids[:, 1:], mask[:, 1:]
            if ids.shape[1] == 0:
                raise ValueError("the texts have no token once the BOS is dropped (bos=False); give non-empty texts.")
        if ids.shape[1] > self.n_ctx:
            lengths = mask.sum(1)
            i = int(lengths.argmax())
            raise ValueError(
                f"text {i} ({str(texts[i])[:40]!r}…) has {int(lengths[i])} tokens, more than the model's context "
                f"of {self.n_ctx}; shorten or split it, or pass max_length={self.n_ctx} to truncate."
            )
        return TokenBatch(ids, mask)

    # --------------------------------------------------------------- forward
    def logits(
        self, input_ids: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"] | None = None
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits of the HF model (hooks added through the bridge apply)."""
        return self.hf_model(
            input_ids=input_ids.to(self.device),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device),
            use_cache=False,
        ).logits

    def next_token_logprobs(
        self, input_ids: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"] | None = None
    ) -> Float[Tensor, "batch pos_minus_1"]:
        """``log p(input_ids[:, t+1] | input_ids[:, :t+1])`` in float32, on the CPU.

        Rows run through the model in chunks whose logits (in the model's dtype) stay under
        :data:`LOGITS_CHUNK_BYTES`, and their float32 log-softmax is taken over blocks of positions
        under the same bound: at real size the logits, not the weights, are the peak (16 texts of
        300 tokens through Gemma-2's 256k vocabulary are 4.9 GB in float32, twice with the
        log-softmax); a zoo model's batch is one chunk and one block.
        """
        n, pos = input_ids.shape
        vocab = max(1, int(self.bridge.cfg.d_vocab))
        rows = max(1, LOGITS_CHUNK_BYTES // (self.dtype.itemsize * pos * vocab))
        out = []
        for s in range(0, n, rows):
            mask = None if attention_mask is None else attention_mask[s : s + rows]
            logits = self.logits(input_ids[s : s + rows], mask)
            target = input_ids[s : s + rows, 1:].to(logits.device)
            span = max(1, LOGITS_CHUNK_BYTES // (4 * logits.shape[0] * vocab))
            parts = []
            for p in range(0, pos - 1, span):
                logp = logits[:, p : min(p + span, pos - 1)].float().log_softmax(-1)
                parts.append(logp.gather(-1, target[:, p : p + span, None]).squeeze(-1).cpu())
                del logp
            out.append(torch.cat(parts, 1) if parts else torch.zeros(logits.shape[0], 0))
            del logits
        return torch.cat(out)

    # -------------------------------------------------------------- weights
    def hf_keys(self) -> list[str]:
        """The state-dict keys of a plain Hugging Face model of this architecture (computed once)."""
        if self._hf_keys is None:
            with torch.device("meta"):
                plain = AutoModelForCausalLM.from_config(self.hf_model.config)
            self._hf_keys = list(plain.state_dict().keys())
        return self._hf_keys

    def hf_named_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The HF model's parameters under their original names (the live tensors, not copies).

        The bridge wraps modules in place (``…._original_component…``) and, for some architectures
        (GPT-2's fused ``c_attn``, GPT-NeoX's ``query_key_value``), registers split or renamed
        modules that share the HF tensors; only the names a plain HF model has are kept.
        """
        keys = set(self.hf_keys())
        out: dict[str, torch.nn.Parameter] = {}
        for n, p in self.hf_model.named_parameters(remove_duplicate=False):
            name = _unwrap(n)
            if name in keys and name not in out:
                out[name] = p
        return out

    def hf_state_dict(self) -> dict[str, Tensor]:
        """The HF model's state dict under its original names, exactly the keys a plain HF model has."""
        wrapped = {_unwrap(k): v for k, v in self.hf_model.state_dict(keep_vars=False).items()}
        keys = self.hf_keys()
        missing = [k for k in keys if k not in wrapped]
        if missing:
            raise KeyError(f"parameters {missing[:5]} of the HF architecture were not found in the wrapped model.")
        return {k: wrapped[k] for k in keys}


def _is_local(source: str | os.PathLike) -> bool:
    return Path(source).expanduser().exists()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(source: str) -> bool:
    """A string that can only be a file-system path, never a hub id (``org/name`` or ``name``)."""
    return (
        source.startswith(("/", "./", "../", "~", "\\"))
        or source.count("/") > 1
        or os.sep != "/"
        and os.sep in source
        or not _HUB_ID.match(source)
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _check_weights(path: Path) -> None:
    """Fail with the file's name when a safetensors weight file is truncated or corrupt.

    Opening reads only the header; safetensors checks there that the tensors' byte ranges fill
    the file exactly, so a truncated file is caught without reading the weights.
    """
    from safetensors import safe_open

    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(f, framework="pt") as st:
                st.keys()
        except Exception as e:  # safetensors raises its own error type for every kind of damage
            raise OSError(
                f"{f} is damaged ({type(e).__name__}: {e}); it is truncated or corrupt. Copy or export the model again."
            ) from None


def intervention_export_config(path: Path) -> PretrainedConfig | None:
    """The base model's config of an SAE-intervention export, rebuilt from its ``config.json``
    (``None`` for an ordinary model folder).

    Such an export names a ``model_type`` transformers does not know and an ``auto_map`` to code
    shipped in the folder (so plain ``transformers`` needs ``trust_remote_code=True`` and never
    quietly loads the original model); the toolkit runs no code from the folder: it loads the
    base architecture's own class with this config and installs the intervention itself.
    """
    try:
        raw = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path / 'config.json'} is corrupt ({e}); copy or export the model again.") from None
    found = base_config_dict(raw, path / "config.json") if isinstance(raw, dict) else None
    if found is None:
        return None
    base, meta = found
    if meta["base_model_type"] not in CONFIG_MAPPING:
        raise ValueError(
            f"{path / 'config.json'}: the export's base model type {meta['base_model_type']!r} is unknown to "
            "transformers here; install the transformers version it was exported with."
        )
    return CONFIG_MAPPING[meta["base_model_type"]].from_dict(base)


def check_library_versions() -> None:
    """Refuse a transformers / TransformerLens pair known to generate wrong text through the bridge.

    transformers 5.24 renamed the attention layers' ``past_key_values`` argument to ``cache``;
    TransformerLens 3's bridge components still pass the old name, so ``generate`` with a KV cache
    decodes every step after the first without its past. Every answer the toolkit scores is
    generated that way: known facts would be scored as forgotten, with no error. (pyproject.toml
    pins ``transformers<5.24``; this catches an environment upgraded by hand.)
    """
    import transformer_lens
    import transformers

    def major_minor(v: str) -> tuple[int, int]:
        m = re.match(r"(\d+)\.(\d+)", v)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    tl = getattr(transformer_lens, "__version__", "") or _dist_version("transformer-lens")
    if major_minor(transformers.__version__) >= (5, 24) and major_minor(tl)[0] < 4:
        raise RuntimeError(
            f"transformers {transformers.__version__} with transformer-lens {tl}: TransformerLens 3's bridge drops "
            "transformers >= 5.24's KV cache, so generated answers (and every accuracy) would be wrong. "
            'Install the tested versions: pip install "transformers<5.24" '
            "(or `make install`, which uses constraints.txt)."
        )


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def load_model(
    source: str | os.PathLike,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype = torch.float32,
    device_map: str | dict | None = None,
    intervention: bool = True,
) -> HookedModel:
    """Load a causal LM from a local HF directory or a hub name and wrap it for hooks.

    Args:
        source: a local directory written by ``save_pretrained`` (config, weights, tokenizer)
            or a hub model name such as ``"gpt2"`` (needs the network).
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, …
        dtype: parameter dtype, ``"float32"`` (default), ``"bfloat16"`` or ``"float16"`` (or the
            ``torch.dtype``); checked against the device first. Activations (captures) come in
            this dtype; SAEs encode in their own (float32) and unlearning keeps float32 master
            copies of the matrices it trains (:mod:`sae_unlearn.unlearning.base`).
        device_map: place the model across devices with accelerate (``"auto"``, ``"balanced"``,
            or ``{module: device}``), for a model larger than one GPU; ``device`` is then only
            where inputs start (the first block's device). Hooks, capture, evaluation and
            unlearning run unchanged.
        intervention: a model exported by a weight-free method (SAE clamping, DSG) carries its SAE
            intervention in ``intervention/``; it is installed unless this is ``False`` (then the
            model is the original weights, which still know what was to be forgotten).
    """
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source={source!r} must be a model folder or a hub name (str or Path).")
    check_library_versions()
    dev = resolve_device(device)
    dtype = resolve_dtype(dtype, dev)
    if device_map is not None and not isinstance(device_map, str | dict):
        raise TypeError(f"device_map={device_map!r} must be 'auto', 'balanced', ... or a {{module: device}} dict.")
    src = str(source)
    if _is_local(src):
        path = Path(src).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a Hugging Face model directory (no config.json). "
                "Pass a folder written by save_pretrained, a zoo model (sae_unlearn.zoo_model_path('secrets')), "
                "or a hub name."
            )
        _check_weights(path)
        src = str(path)
        kwargs: dict = {"local_files_only": True}
        export_config = intervention_export_config(path)
        if export_config is not None:  # an SAE-intervention export: its base class, no code from the folder
            kwargs["config"] = export_config
    elif isinstance(source, os.PathLike) or _looks_like_path(src):
        raise FileNotFoundError(f"model folder {src} not found; check the path (it is not a hub name either).")
    elif os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(
            f"{src!r} is neither a local directory nor loadable from the hub (HF_HUB_OFFLINE=1). "
            "Pass a local model directory or go online."
        )
    elif not hub_reachable():
        raise ConnectionError(
            f"{src!r} is not a local folder and the Hugging Face hub cannot be reached. Pass a local model folder, "
            "or set HF_HUB_OFFLINE=1 to load it from the local Hugging Face cache."
        )
    else:
        kwargs = {}
    tokenizer = AutoTokenizer.from_pretrained(src, **kwargs)  # (with config: never reads config.json)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device_map is None:
        hf_model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kwargs)
        hf_model.to(dev)  # type: ignore[arg-type]  # transformers types .to() for dtypes only
    else:  # accelerate places the modules and moves activations between devices in its hooks
        hf_model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, device_map=device_map, **kwargs)
        dev = next(hf_model.parameters()).device
    hf_model.eval()
    bridge_tokenizer = tokenizer
    if kwargs.get("config") is not None:
        # the bridge reloads the tokenizer from the folder (to prepend BOS); AutoTokenizer then reads the
        # export's config.json, whose auto_map makes transformers *ask* whether to run the folder's code.
        # The toolkit never runs it: it answers no (and AutoTokenizer falls back to a plain config).
        bridge_tokenizer = copy.copy(tokenizer)
        bridge_tokenizer.init_kwargs = {**tokenizer.init_kwargs, "trust_remote_code": False}
    try:
        bridge = TransformerBridge.boot_transformers(
            src, hf_model=hf_model, tokenizer=bridge_tokenizer, device=dev, dtype=dtype
        )
    except ValueError as e:
        if "supported architecture" not in str(e):
            raise
        arch = getattr(hf_model.config, "architectures", None) or [type(hf_model).__name__]
        raise NotImplementedError(
            f"{src}: architecture {arch[0]} ({hf_model.config.model_type}) is not mapped by TransformerLens's "
            "TransformerBridge, so its hook points and weights cannot be addressed. Every stage is tested on "
            "Llama, Qwen2, Gemma-2, GPT-2 and GPT-NeoX; others the bridge maps load too (see its list of "
            "supported architectures)."
        ) from None
    logger.info("loaded %s (%d layers) on %s", src, bridge.cfg.n_layers, dev)
    model = HookedModel(bridge=bridge, hf_model=hf_model, tokenizer=tokenizer, source=src)
    iv_dir = Path(src) / INTERVENTION_DIR
    if intervention and (iv_dir / SPEC_FILE).is_file():
        if _INSTALLER is None:
            raise RuntimeError(
                f"{iv_dir} holds a saved SAE intervention, and nothing that installs one has been imported. "
                "Import sae_unlearn.interventions first (or load with sae_unlearn.load_model, which does), "
                "or pass intervention=False for the weights alone."
            )
        _INSTALLER(model, iv_dir)
        logger.info("installed the intervention saved in %s", iv_dir)
    return model
