"""Hook-name helpers: TransformerLens hook names are the only addresses of model sites.

``blocks.{l}.hook_resid_post``, ``blocks.{l}.mlp.hook_post`` … name an activation; these
helpers parse the layer out of a name and turn an unknown name into an error that lists
the valid ones compactly (``blocks.{0-3}.hook_resid_post``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


class HookNameError(KeyError):
    """An unknown hook name or a layer out of range."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def hook_layer(name: str) -> int | None:
    """Layer index of a ``blocks.{l}.…`` hook, ``None`` for hooks outside the blocks."""
    m = _BLOCK_RE.match(name)
    return int(m.group(1)) if m else None


def last_writer_layer(name: str) -> int | None:
    """The deepest block whose computation reaches the hook: ``L`` for ``blocks.L.*`` sites, but
    ``L - 1`` for ``blocks.L.hook_resid_pre`` (the residual stream *entering* block ``L``, e.g.
    gpt2-small-res-jb's SAE sites); ``None`` outside the blocks or before the first one."""
    m = _BLOCK_RE.match(name)
    if not m:
        return None
    layer = int(m.group(1))
    if m.group(2) == "hook_resid_pre":
        return layer - 1 if layer > 0 else None
    return layer


def resid_post(layer: int) -> str:
    """``blocks.{layer}.hook_resid_post``: the residual stream after block ``layer``."""
    return f"blocks.{layer}.hook_resid_post"


def summarize_hook_names(names: Iterable[str], n_layers: int) -> list[str]:
    """Group per-block hook names as ``blocks.{0-3}.hook_resid_post`` (order kept)."""
    suffixes: dict[str, None] = {}
    others: dict[str, None] = {}
    for n in names:
        m = _BLOCK_RE.match(n)
        if m:
            suffixes[m.group(2)] = None
        else:
            others[n] = None
    rng = f"{{0-{n_layers - 1}}}" if n_layers > 1 else "0"
    return [f"blocks.{rng}.{s}" for s in suffixes] + list(others)


def validate_hook_names(requested: Sequence[str] | str, valid: Iterable[str], n_layers: int) -> list[str]:
    """Return ``requested`` as a list after checking each name exists.

    Raises :class:`HookNameError` naming the bad value: a layer out of range says how many
    layers there are; an unknown name lists the valid names.
    """
    if isinstance(requested, str):
        requested = [requested]
    requested = list(requested)
    if not requested:
        raise HookNameError("no hook names given; pass e.g. ['blocks.0.hook_resid_post'].")
    valid_set = set(valid)
    for name in requested:
        if name in valid_set:
            continue
        layer = hook_layer(name)
        if layer is not None and layer >= n_layers:
            m = _BLOCK_RE.match(name)
            raise HookNameError(
                f"hook {name!r}: layer {layer} out of range for a model with {n_layers} layers; "
                f"use blocks.0-{n_layers - 1} (e.g. 'blocks.{n_layers - 1}.{m.group(2) if m else 'hook_resid_post'}')."
            )
        summary = summarize_hook_names(sorted(valid_set, key=_sort_key), n_layers)
        raise HookNameError(f"hook {name!r} is not in the model. Valid hook names: {', '.join(summary)}")
    return requested


def _sort_key(name: str) -> tuple[int, int, str]:
    layer = hook_layer(name)
    return (0 if layer is None else 1, layer or 0, name)
