"""What each stage of a recipe run costs: seconds, peak host memory, peak GPU memory, tokens/s.

:class:`StageMeter` is one context manager per stage. Peak host memory is the kernel's
high-water mark of this process's resident set (``VmHWM``), reset at the stage's start by writing
``5`` to ``/proc/self/clear_refs`` (Linux), so each stage's number is its own peak with whatever
earlier stages left resident. Where ``/proc`` is missing or refuses the reset, the number is
``resource.getrusage``'s peak of the whole process so far, and ``peak_rss_scope`` says
``"process"`` instead of ``"stage"``. Tokens are counted where they enter a model: every call of
a token embedding (an ``nn.Embedding`` as wide as the model's vocabulary, in any model the stage
runs: the recipe's, a training copy, the export's reload) adds its input's size, padding included.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def status_mb(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; ``False`` where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        status_mb("VmHWM")
        return True
    except (OSError, KeyError):
        return False


def peak_rss_mb(stage_scoped: bool) -> float:
    """``VmHWM`` (since the last reset) when ``stage_scoped``, else the process's lifetime peak."""
    if stage_scoped:
        with contextlib.suppress(OSError, KeyError):
            return status_mb("VmHWM")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


class StageMeter:
    """Measures stages one after the other into :attr:`stages`: ``{stage: {seconds, peak_rss_mb,
    peak_rss_scope, [peak_gpu_mb], [tokens, tokens_per_second]}}``.

    Tokens are counted once :attr:`vocab_size` is set (the model is loaded), and reported only for
    stages named in ``token_stages``."""

    def __init__(self, token_stages: tuple[str, ...] = ()) -> None:
        self.stages: dict[str, dict[str, Any]] = {}
        self.vocab_size: int | None = None
        """The model's vocabulary size: embeddings this wide are token embeddings."""
        self.token_stages = token_stages
        self._tokens = 0

    def _count(self, module: torch.nn.Module, args: tuple) -> None:
        if (
            self.vocab_size is not None
            and isinstance(module, torch.nn.Embedding)
            and module.num_embeddings == self.vocab_size
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            self._tokens += int(args[0].numel())

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if stage in self.stages:
            raise ValueError(f"stage {stage!r} was measured already; give each stage its own name.")
        scoped = reset_peak_rss()
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        self._tokens = 0
        counting = stage in self.token_stages
        handle = torch.nn.modules.module.register_module_forward_pre_hook(self._count) if counting else None
        t0 = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - t0
            if handle is not None:
                handle.remove()
            cost: dict[str, Any] = {
                "seconds": round(seconds, 3),
                "peak_rss_mb": round(peak_rss_mb(scoped), 1),
                "peak_rss_scope": "stage" if scoped else "process",
            }
            if cuda:
                cost["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if counting:
                cost["tokens"] = self._tokens
                cost["tokens_per_second"] = round(self._tokens / seconds, 1) if seconds > 0 else None
            self.stages[stage] = cost
