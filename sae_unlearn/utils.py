"""Small shared helpers: seeding, devices, hashing, cache folders and atomic writes.

Nothing here holds global state: seeds are passed explicitly and every helper is a
pure function or a context manager that restores what it changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "SAE_UNLEARN_CACHE"


class DictConfig:
    """Mixin for config dataclasses: ``to_dict`` / ``from_dict`` so a run is saved next to its artefacts.

    ``from_dict`` ignores unknown keys (a config saved by a newer version still loads) and runs the
    class's ``__post_init__`` validation.
    """

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict):  # noqa: ANN206 - returns an instance of the subclass
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})


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
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:length]


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


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Write a directory atomically: yield a temporary sibling, rename it onto ``target`` on success.

    An exception inside the block removes the temporary folder and leaves ``target`` untouched,
    so a reader never sees a half-written directory.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True or choose another path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source (for ``--help`` texts)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)
    return docs
