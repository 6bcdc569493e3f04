"""Captured activations, in memory or as safetensors shards on disk.

An :class:`ActivationStore` holds one row per captured token for each hook, plus the token
id, text index and position of every row. On disk it is a folder of ``shard_XXXXX.safetensors``
files and a ``manifest.json``; shards are read lazily, so a store larger than memory can be
streamed (:meth:`ActivationStore.iter_batches`). :class:`ShardWriter` writes such a folder
shard by shard, recording progress in the manifest so that an interrupted capture resumes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from sae_unlearn.atomic import read_json, write_json_atomic
from sae_unlearn.utils import seeded_generator

if TYPE_CHECKING:
    from sae_unlearn.capture.capture import ActivationBatch

MANIFEST = "manifest.json"
_META_KEYS = ("token_ids", "seq_index", "position")


class ActivationStore:
    """Per-token activations at several hooks (rows aligned across hooks)."""

    def __init__(
        self, hooks: Sequence[str], shards: list[dict[str, Tensor]] | None = None, files: list[Path] | None = None
    ):
        if (shards is None) == (files is None):
            raise ValueError("give exactly one of shards (in memory) or files (on disk).")
        self.hooks = list(hooks)
        self._shards = shards
        self._files = files

    # ---------------------------------------------------------- construction
    @classmethod
    def from_batches(cls, batches: Sequence[ActivationBatch], hooks: Sequence[str]) -> ActivationStore:
        """An in-memory store from captured batches."""
        if not batches:
            raise ValueError("no activation batches to store.")
        shard = {h: torch.cat([b.activations[h] for b in batches]) for h in hooks}
        for k in _META_KEYS:
            shard[k] = torch.cat([getattr(b, k) for b in batches])
        return cls(hooks, shards=[shard])

    @classmethod
    def from_disk(cls, folder: str | Path) -> ActivationStore:
        """Open a folder written by :class:`ShardWriter` (must be complete)."""
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{folder} holds no activation cache ({MANIFEST} missing).")
        manifest = read_json(manifest_path, "activation cache manifest")
        if not manifest.get("complete"):
            raise ValueError(f"activation cache {folder} is incomplete; run the capture again to resume it.")
        return cls(manifest["hooks"], files=[folder / s["file"] for s in manifest["shards"]])

    # ------------------------------------------------------------- reading
    @property
    def on_disk(self) -> bool:
        return self._files is not None

    @property
    def n_shards(self) -> int:
        """How many shards hold the rows (one for an in-memory store)."""
        return len(self._files) if self._files is not None else len(self._shards or [])

    def shard(self, i: int) -> dict[str, Tensor]:
        """Shard ``i`` as a dict of hook name / metadata key → tensor (read from disk if stored there)."""
        if self._files is not None:
            return load_file(self._files[i])
        assert self._shards is not None  # exactly one of the two is set (__init__)
        return self._shards[i]

    def iter_shards(self) -> Iterator[dict[str, Tensor]]:
        """Each shard as a dict of hook name / metadata key → tensor (one shard in memory at a time)."""
        for i in range(self.n_shards):
            yield self.shard(i)

    def _check_hook(self, hook: str) -> None:
        if hook not in self.hooks:
            raise KeyError(f"hook {hook!r} was not captured; this store holds {self.hooks}.")

    def __getitem__(self, hook: str) -> Float[Tensor, "n_tokens ..."]:
        """All rows of one hook, concatenated (loads every shard)."""
        self._check_hook(hook)
        return torch.cat([s[hook] for s in self.iter_shards()])

    def _meta(self, key: str) -> Int[Tensor, " n_tokens"]:
        return torch.cat([s[key] for s in self.iter_shards()])

    @property
    def token_ids(self) -> Int[Tensor, " n_tokens"]:
        return self._meta("token_ids")

    @property
    def seq_index(self) -> Int[Tensor, " n_tokens"]:
        return self._meta("seq_index")

    @property
    def position(self) -> Int[Tensor, " n_tokens"]:
        return self._meta("position")

    @property
    def n_tokens(self) -> int:
        return sum(int(s["token_ids"].shape[0]) for s in self.iter_shards())

    def last_token_rows(self) -> Bool[Tensor, " n_tokens"]:
        """Which rows hold the last token of their text (e.g. the token before a prompt's answer)."""
        seq, pos = self.seq_index, self.position
        last = torch.full((int(seq.max()) + 1,), -1, dtype=pos.dtype).scatter_reduce(0, seq, pos, reduce="amax")
        return pos == last[seq]

    def select_rows(self, mask: Bool[Tensor, " n_tokens"]) -> ActivationStore:
        """An in-memory store of the flagged rows only (every hook and the row metadata)."""
        mask = self.check_row_mask(mask, "mask")
        if not mask.any():
            raise ValueError("the mask flags no row; nothing to keep.")
        out: dict[str, list[Tensor]] = {k: [] for k in [*self.hooks, *_META_KEYS]}
        start = 0
        for shard in self.iter_shards():
            n = int(shard["token_ids"].shape[0])
            keep = mask[start : start + n]
            for k in out:
                out[k].append(shard[k][keep])
            start += n
        return ActivationStore(self.hooks, shards=[{k: torch.cat(v) for k, v in out.items()}])

    def check_row_mask(self, mask: Tensor | None, name: str = "forget_mask") -> Bool[Tensor, " n_tokens"]:
        """Check a boolean mask with one flag per row (e.g. which rows are forget tokens); return it.

        An integer 0/1 mask raises ``TypeError``: used to index it would pick rows 0 and 1 over
        and over instead of selecting the flagged rows.
        """
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(
                f"{name} must be a bool tensor, not {getattr(mask, 'dtype', type(mask).__name__)}: an integer 0/1 "
                f"mask would index rows instead of selecting them. Use {name}.bool(), or build it as "
                "store.seq_index < len(forget_texts)."
            )
        if mask.ndim != 1 or mask.shape[0] != self.n_tokens:
            raise ValueError(
                f"{name} has shape {tuple(mask.shape)} but the store holds {self.n_tokens} rows; give one flag per row."
            )
        return mask

    def mean_norm(self, hook: str) -> float:
        """Mean L2 norm of the rows of ``hook`` (streamed over shards)."""
        self._check_hook(hook)
        total, count = 0.0, 0
        for s in self.iter_shards():
            x = s[hook].flatten(1).double()
            total += float(x.norm(dim=-1).sum())
            count += x.shape[0]
        return total / max(1, count)

    def iter_batches(
        self,
        hook: str | Sequence[str],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epochs: int | None = 1,
        drop_last: bool = False,
    ) -> Iterator[Float[Tensor, "batch ..."] | dict[str, Float[Tensor, "batch ..."]]]:
        """Batches of rows; one hook gives tensors, several give ``{hook: tensor}`` with aligned rows.

        Shards are visited (and rows within them drawn) in a seeded random order when
        ``shuffle``; batches span shard boundaries, so every batch but the last of an epoch has
        ``batch_size`` rows (``drop_last`` drops that one). ``epochs=None`` repeats forever, for
        trainers that take an endless iterator.
        """
        hooks = [hook] if isinstance(hook, str) else list(hook)
        for h in hooks:
            self._check_hook(h)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1.")
        if drop_last and self.n_tokens < batch_size:
            raise ValueError(
                f"batch_size={batch_size} with drop_last needs at least that many rows, but the store holds "
                f"{self.n_tokens}; capture more text or lower the batch size."
            )
        n_shards = self.n_shards
        epoch = 0
        while epochs is None or epoch < epochs:
            gen = seeded_generator(seed * 1_000_003 + epoch)
            order = torch.randperm(n_shards, generator=gen).tolist() if shuffle else range(n_shards)
            pending: list[dict[str, Tensor]] = []
            n_pending = 0
            for i in order:
                shard = self.shard(i)
                n = shard[hooks[0]].shape[0]
                idx = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
                pending.append({h: shard[h][idx] for h in hooks})
                n_pending += n
                while n_pending >= batch_size:
                    merged = {h: torch.cat([p[h] for p in pending]) for h in hooks}
                    batch = {h: v[:batch_size] for h, v in merged.items()}
                    pending = [{h: v[batch_size:] for h, v in merged.items()}]
                    n_pending -= batch_size
                    yield batch[hooks[0]] if isinstance(hook, str) else batch
            if n_pending and not drop_last:
                batch = {h: torch.cat([p[h] for p in pending]) for h in hooks}
                yield batch[hooks[0]] if isinstance(hook, str) else batch
            epoch += 1

    def __repr__(self) -> str:
        where = f"{self.n_shards} shards on disk" if self.on_disk else "in memory"
        return f"ActivationStore(hooks={self.hooks}, n_tokens={self.n_tokens}, {where})"


class ShardWriter:
    """Writes captured batches as safetensors shards and resumes an interrupted capture."""

    def __init__(self, folder: str | Path, hooks: Sequence[str], shard_tokens: int = 65_536, meta: dict | None = None):
        if shard_tokens < 1:
            raise ValueError(f"shard_tokens={shard_tokens} must be >= 1.")
        self.folder = Path(folder)
        self.hooks = list(hooks)
        self.shard_tokens = shard_tokens
        self.meta = meta or {}
        self._buffer: list[ActivationBatch] = []
        self._buffer_batches = 0
        manifest = self._read_manifest()
        if manifest is not None and manifest["hooks"] == self.hooks and manifest["meta"] == self.meta:
            self.manifest = manifest
        else:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True)
            self.manifest = {"hooks": self.hooks, "meta": self.meta, "shards": [], "next_batch": 0, "complete": False}
            write_json_atomic(self.folder / MANIFEST, self.manifest)

    def _read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        return read_json(path, "activation cache manifest") if path.is_file() else None

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def next_batch(self) -> int:
        """Index of the first batch not yet in a written shard."""
        return int(self.manifest["next_batch"])

    def add(self, batch: ActivationBatch) -> None:
        self._buffer.append(batch)
        self._buffer_batches += 1
        if sum(b.n_tokens for b in self._buffer) >= self.shard_tokens:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        shard = ActivationStore.from_batches(self._buffer, self.hooks).shard(0)
        name = f"shard_{len(self.manifest['shards']):05d}.safetensors"
        tmp = self.folder / f".{name}.tmp"
        save_file({k: v.contiguous() for k, v in shard.items()}, str(tmp))
        os.replace(tmp, self.folder / name)
        self.manifest["shards"].append({"file": name, "n_tokens": int(shard["token_ids"].shape[0])})
        self.manifest["next_batch"] = self.next_batch + self._buffer_batches
        write_json_atomic(self.folder / MANIFEST, self.manifest)
        self._buffer, self._buffer_batches = [], 0

    def finish(self) -> None:
        """Write the last shard and mark the capture complete."""
        self._flush()
        if not self.manifest["shards"]:
            raise ValueError("nothing was captured (no tokens left after masking).")
        self.manifest["complete"] = True
        write_json_atomic(self.folder / MANIFEST, self.manifest)
