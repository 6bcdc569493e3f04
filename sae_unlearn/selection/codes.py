"""Sparse SAE codes spilled to disk, so that one pass over the model serves a selection whose
second half needs latents chosen from the whole first half.

A text's forget evidence (:mod:`sae_unlearn.selection.layers`) is the largest, over its tokens,
of the summed activation of the layer's relevant latents; those latents are known only once
every token has been seen, and a maximum of a sum cannot be rebuilt from per-latent totals. An
SAE fires a few dozen of its thousands of latents per token, so each token's non-zero codes
(latent index and value) are appended to a file as they are computed and read back once the
latents are chosen. The evidence rebuilt from them is bit for bit the one the dense codes give:
the same values, gathered into the same ``(tokens, relevant)`` matrix and summed the same way.

A record per batch: ``n_tokens`` and ``nnz`` (int64), each token's text index and count of
non-zero codes (int32), the latent indices (int16 when the SAE has at most 32768 latents, else
int32) and the values (the codes' own dtype). Host memory is one batch's record.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

_HEADER = struct.Struct("<qq")


def _write(f, t: Tensor) -> int:
    """Write ``t``'s raw bytes; return how many."""
    raw = t.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    f.write(raw.data)
    return int(raw.nbytes)


def _read(f, n: int, dtype: torch.dtype) -> Tensor:
    """Read ``n`` elements of ``dtype``."""
    if n == 0:
        return torch.zeros(0, dtype=dtype)
    buf = bytearray(n * torch.empty(0, dtype=dtype).element_size())
    if f.readinto(buf) != len(buf):
        raise EOFError("the code spill ended early; it was cut or overwritten while the selection ran.")
    return torch.frombuffer(buf, dtype=dtype)


class CodeSpill:
    """An append-only file of one SAE's sparse codes, batch by batch, read back in the same order.

    Write every batch with :meth:`add`, then read with :meth:`text_evidence` (any number of times).
    The file is the caller's to remove (the streaming selection keeps it in a temporary folder).
    """

    def __init__(self, path: str | Path, d_sae: int, dtype: torch.dtype):
        self.path = Path(path)
        self.d_sae = int(d_sae)
        self.dtype = dtype
        """The codes' dtype (values are stored in it, exactly)."""
        self.index_dtype = torch.int16 if self.d_sae <= 2**15 else torch.int32
        self.nbytes = 0
        """Bytes written so far."""
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by finish(), kept open across batches

    def add(
        self,
        seq_index: Int[Tensor, " n_tokens"],
        row: Int[Tensor, " nnz"],
        latent: Int[Tensor, " nnz"],
        value: Float[Tensor, " nnz"],
    ) -> None:
        """Append one batch: token ``i`` belongs to text ``seq_index[i]``; its non-zero codes are
        ``value[j]`` at latent ``latent[j]`` for every ``j`` with ``row[j] == i`` (``row`` sorted,
        as ``Tensor.nonzero`` gives it)."""
        if self._file.closed:
            raise RuntimeError(f"the code spill {self.path} is finished; it takes no more batches.")
        if value.dtype != self.dtype:
            raise TypeError(f"codes of dtype {value.dtype}, but the spill stores {self.dtype}.")
        n, nnz = int(seq_index.shape[0]), int(value.shape[0])
        counts = torch.bincount(row.cpu(), minlength=n)
        if counts.shape[0] != n:
            raise ValueError(f"codes of row {counts.shape[0] - 1}, but the batch has {n} tokens.")
        self._file.write(_HEADER.pack(n, nnz))
        self.nbytes += _HEADER.size
        self.nbytes += _write(self._file, seq_index.cpu().to(torch.int32))
        self.nbytes += _write(self._file, counts.to(torch.int32))
        self.nbytes += _write(self._file, latent.cpu().to(self.index_dtype))
        self.nbytes += _write(self._file, value.cpu())

    def finish(self) -> None:
        """Close the file for writing (reading opens it afresh)."""
        self._file.close()

    def batches(self) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """The batches as written: ``(seq_index, row, latent, value)``, ``row`` and ``latent`` as int64."""
        self.finish()
        with open(self.path, "rb") as f:
            while header := f.read(_HEADER.size):
                n, nnz = _HEADER.unpack(header)
                seq = _read(f, n, torch.int32).long()
                counts = _read(f, n, torch.int32).long()
                latent = _read(f, nnz, self.index_dtype).long()
                value = _read(f, nnz, self.dtype)
                yield seq, torch.repeat_interleave(torch.arange(n), counts), latent, value

    def text_evidence(self, relevant: Int[Tensor, " k"], n_texts: int) -> Float[Tensor, " n_texts"]:
        """Per text, the largest over its tokens of the summed codes of the ``relevant`` latents
        (float32; ``-inf`` for a text with no token). The same numbers as
        ``z[:, relevant].sum(-1).float()`` on the dense codes ``z``, then the maximum per text."""
        relevant = relevant.cpu().long()
        slot = torch.full((self.d_sae,), -1, dtype=torch.long)
        slot[relevant] = torch.arange(relevant.numel())
        evidence = torch.full((n_texts,), float("-inf"))
        for seq, row, latent, value in self.batches():
            s = slot[latent]
            keep = s >= 0
            picked = torch.zeros(seq.shape[0], relevant.numel(), dtype=self.dtype)
            picked[row[keep], s[keep]] = value[keep]
            evidence = evidence.scatter_reduce(0, seq, picked.sum(-1).float(), reduce="amax")
        return evidence
