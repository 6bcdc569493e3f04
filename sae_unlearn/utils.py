"""Small shared helpers: seeding, devices, hashing, cache folders (atomic writes: :mod:`sae_unlearn.atomic`).

Nothing here holds global state: seeds are passed explicitly and every helper is a
pure function or a context manager that restores what it changed.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
import os
import random
import types
import typing
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "SAE_UNLEARN_CACHE"


class DictConfig:
    """Mixin for config dataclasses: field checks, and ``to_dict`` / ``from_dict`` so a run is saved
    next to its artefacts.

    ``__post_init__`` checks every field against its annotation (``int``, ``float``, ``str``,
    ``bool``, ``Literal[...]``, ``X | None``, ``list[str]``, ``tuple[int, ...]``) and that floats are
    finite, so ``steps="20"`` or ``alpha=nan`` fail at once with the field's name and a fix, not
    minutes later or blamed on another setting. Subclasses with their own ``__post_init__`` call
    ``super().__post_init__()`` first. ``from_dict`` ignores unknown keys (a config saved by a newer
    version still loads) and runs the same validation.
    """

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict):  # noqa: ANN206 - returns an instance of the subclass
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_settings(cls, d: Mapping[str, Any], what: str = ""):  # noqa: ANN206 - an instance of the subclass
        """Like :meth:`from_dict`, for settings a person typed: an unknown key raises ``ValueError``
        naming it, the closest valid key and all of them (``{"setps": 10}`` must not silently run
        the default number of steps)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"{what or cls.__name__} settings={d!r} must be a dict of settings.")
        cls._check_names(d, what, ValueError)
        return cls(**dict(d))

    def replaced(self, changes: Mapping[str, Any], what: str = ""):  # noqa: ANN201 - an instance of the subclass
        """A copy with the fields in ``changes`` replaced (given as keywords to a function: an unknown
        name raises ``TypeError``, as Python does, naming the closest field); checked as a new one."""
        self._check_names(changes, what, TypeError)
        return replace(self, **changes) if changes else self  # type: ignore[type-var]

    @classmethod
    def _check_names(cls, d: Mapping[str, Any], what: str, error: type[Exception]) -> None:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for key in d:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else "."
                raise error(
                    f"unknown setting {key!r} for {what or cls.__name__}{hint} Valid settings: {', '.join(names)}."
                )


def check_keywords(function: str, given: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Refuse keywords a ``**kwargs`` function does not take: ``TypeError`` naming them and the ones it does."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise TypeError(f"{function}() got {unknown}; besides its own arguments it takes {', '.join(allowed)}.")


def _matches(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; ``None`` when the hint is not one this check understands."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, a) for a in args]
        return True if any(results) else (None if None in results else False)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) and args:
        if not isinstance(value, list | tuple):
            return False
        item = args[0]
        return all(_matches(v, item) is not False for v in value)
    return None


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "None"
    if origin in (list, tuple):
        return f"a {origin.__name__} of {_describe(args[0])}" if args else f"a {origin.__name__}"
    name = getattr(hint, "__name__", str(hint))
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def check_fields(config: Any) -> None:
    """Check a dataclass's field values against their annotations and that floats are finite.

    Raises ``TypeError`` (wrong type, e.g. ``steps='20'``) or ``ValueError`` (``nan``/``inf``),
    naming the class, the field, the value and the fix.
    """
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for f in fields(config):
        value, hint = getattr(config, f.name), hints.get(f.name)
        if hint is None:
            continue
        ok = _matches(value, hint)
        if ok is False:
            fix = ""
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    fix = f"; e.g. {f.name}={(int(value) if value.strip().lstrip('-').isdigit() else float(value))!r}"
            raise TypeError(
                f"{cls.__name__}.{f.name}={value!r} must be {_describe(hint)} (got {type(value).__name__}){fix}."
            )
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{cls.__name__}.{f.name}={value!r} must be a finite number.")


def as_text_list(texts: Any, what: str = "texts") -> list[str]:
    """``texts`` as a list of strings; a single ``str`` (a common slip: it would be read as one text
    per character) or non-string items raise ``TypeError`` naming the value and the fix."""
    if isinstance(texts, str):
        raise TypeError(
            f"{what} is a single string ({_short(texts)}), not a list of texts; it would be read one "
            f"character at a time. Pass a list, e.g. [{_short(texts)}]."
        )
    if isinstance(texts, bytes) or not isinstance(texts, Sequence | Iterable):
        raise TypeError(f"{what} must be a list of strings, not {type(texts).__name__}.")
    out = list(texts)
    bad = [(i, t) for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        i, t = bad[0]
        raise TypeError(f"{what}[{i}] is a {type(t).__name__} ({t!r:.60}), not a string; {len(bad)} such item(s).")
    return out


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "…")


def check_forget_retain(forget: Any, retain: Any) -> tuple[list[str], list[str]]:
    """Validate an unlearning data set; return both as lists.

    Raises when either is a single string or empty, holds an empty or whitespace-only text (it
    carries nothing to forget, yet still moves the weights), or when a text is in both sets
    (unlearning would be told to forget and keep the same text).
    """
    forget, retain = as_text_list(forget, "forget texts"), as_text_list(retain, "retain texts")
    for what, texts in (("forget", forget), ("retain", retain)):
        if not texts:
            raise ValueError(f"the {what} set is empty; unlearning needs forget and retain texts.")
        blank = [i for i, t in enumerate(texts) if not t.strip()]
        if blank:
            raise ValueError(
                f"{len(blank)} {what} text(s) are empty or whitespace only (e.g. index {blank[0]}); remove them."
            )
    overlap = set(forget) & set(retain)
    if overlap:
        example = _short(sorted(overlap)[0])
        raise ValueError(
            f"{len(overlap)} text(s) are in both the forget and the retain set (e.g. {example}); "
            "unlearning cannot forget and keep the same text. Remove them from one side."
        )
    return forget, retain


def renamed_keyword(old: str, new: str, old_value: Any, new_value: Any, default: Any, stacklevel: int = 3) -> Any:
    """The value of a keyword renamed from ``old`` to ``new`` (kept one release with a warning).

    Returns ``new_value`` unless the caller passed the old keyword (``old_value`` not ``None``);
    then warns ``DeprecationWarning`` and returns ``old_value``. Passing both raises ``TypeError``.
    """
    if old_value is None:
        return new_value
    if new_value != default:
        raise TypeError(f"pass either {new}= or its deprecated name {old}=, not both.")
    warnings.warn(f"{old}= is deprecated; use {new}= (same meaning).", DeprecationWarning, stacklevel=stacklevel)
    return old_value


def run_environment() -> dict:
    """What decides bit-level reproducibility besides the seed: torch version and CPU thread count.

    The same seed gives the same models, SAEs and numbers only with the same thread count (CPU
    reductions split their sums by thread; 1 vs 2 threads changes the last bits and so every
    hash). Reports and cards record this next to the seed.
    """
    return {
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def cache_dir() -> Path:
    """Root folder for built artefacts (zoo models, activation caches).

    ``$SAE_UNLEARN_CACHE`` when set, else ``~/.cache/sae_unlearn``.
    """
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "sae_unlearn"


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` picks :func:`default_device`; anything else is checked."""
    if device is None or device == "auto":
        return default_device()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for but no CUDA GPU is visible; use device='cpu' or 'auto'.")
    return dev


DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The model dtypes the toolkit runs in, by name."""


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device | None = None) -> torch.dtype:
    """``dtype`` (a name in :data:`DTYPES` or a ``torch.dtype``) checked against ``device``.

    Raises ``ValueError`` naming the choices for an unknown dtype, and for a dtype the device
    lacks: bfloat16 on a CUDA GPU before Ampere (``torch.cuda.is_bf16_supported()`` is false),
    float16 or bfloat16 on a CPU build that cannot multiply matrices in it.
    """
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r}; choose one of {sorted(DTYPES)}.")
        dt = DTYPES[dtype]
    elif isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype={dtype}; choose one of {sorted(DTYPES)} (float64 and integer types are not run).")
        dt = dtype
    else:
        raise TypeError(f"dtype={dtype!r} must be a name ({sorted(DTYPES)}) or a torch.dtype.")
    dev = None if device is None or device == "auto" else torch.device(device)
    if dev is not None and dev.type == "cuda" and dt == torch.bfloat16 and torch.cuda.is_available():
        if not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"dtype=bfloat16 on {torch.cuda.get_device_name(dev)}, which lacks bfloat16 support; "
                "use dtype='float16' or 'float32'."
            )
    if dev is not None and dev.type == "cpu" and dt != torch.float32:
        try:
            torch.ones(2, 2, dtype=dt) @ torch.ones(2, 2, dtype=dt)
        except RuntimeError as e:
            raise ValueError(f"dtype={dt} is not supported on this CPU build ({e}); use dtype='float32'.") from None
    return dt


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (no global RNG is touched)."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed python, torch (CPU and CUDA) for the duration of the block, then restore the RNG states.

    Used where library code (e.g. ``nn.Module`` init) draws from the global torch RNG.
    """
    py_state = random.getstate()
    torch_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short sha256 of a JSON-serialisable object (sorted keys), for cache keys."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def hash_state_dict(state_dict: dict[str, torch.Tensor], length: int = 16) -> str:
    """sha256 over parameter names and exact bytes: equal hashes mean bit-identical weights."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().data)  # the bytes as they are: no copy
    return h.hexdigest()[:length]


_MADV_PAGEOUT = 21  # Linux >= 5.4: reclaim these pages now (never discards data)


def page_out(tensors: Iterable[torch.Tensor]) -> bool:
    """Ask the kernel to reclaim the CPU pages of ``tensors`` that it can reclaim without loss.

    Weights that transformers maps from a ``.safetensors`` file and that were never written are
    clean file pages: the kernel drops them and reads them back from the file on the next access,
    so the values are unchanged. Pages written since (trained weights) are anonymous memory and
    stay (without swap). The export's reload check calls this on the in-memory model so that
    its second copy is not held twice. Returns ``False`` where it is not available (not Linux,
    or an old kernel); CUDA tensors are left alone.
    """
    import ctypes
    import mmap
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    for t in tensors:
        if t.device.type != "cpu" or t.numel() == 0:
            continue
        start = t.data_ptr() - t.data_ptr() % page
        end = t.data_ptr() + t.numel() * t.element_size()
        length = (end - start + page - 1) // page * page
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), _MADV_PAGEOUT) != 0:
            return False
    return True


def hash_directory(path: str | Path, length: int = 16) -> str:
    """sha256 over every file's relative path and bytes under ``path`` (sorted)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def distinct_parameters(params: Mapping[str, torch.nn.Parameter]) -> dict[str, torch.nn.Parameter]:
    """``params`` with each tensor once, under the first name it has (a head tied to the embeddings
    is listed under both names by ``hf_named_parameters``: an optimizer given it twice steps it twice,
    and an in-place edit applied per name applies twice)."""
    seen: set[int] = set()
    out = {}
    for n, p in params.items():
        if id(p) not in seen:
            seen.add(id(p))
            out[n] = p
    return out


@contextlib.contextmanager
def preserved_parameters(params: dict[str, torch.nn.Parameter]) -> Iterator[dict[str, torch.nn.Parameter]]:
    """Inside the block the parameters may be changed freely; on exit (also on error) their
    values, ``requires_grad`` flags and gradients are put back as they were on entry."""
    saved = {n: p.detach().clone() for n, p in params.items()}
    flags = {n: p.requires_grad for n, p in params.items()}
    grads = {n: p.grad for n, p in params.items()}
    try:
        yield params
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])
                p.requires_grad_(flags[n])
                p.grad = grads[n]


@contextlib.contextmanager
def frozen_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Inside the block no parameter of ``module`` requires grad (on exit each flag is as it was):
    a loss over trainable tensors *outside* the module (a probe's map, say) then backpropagates
    through the module without computing, or leaving behind, gradients for its weights."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source (for ``--help`` texts)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    node0 = tree.body[0]
    if not isinstance(node0, ast.ClassDef):
        raise TypeError(f"{cls!r} is not a class defined in source.")
    body = node0.body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = str(nxt.value.value)
    return docs
