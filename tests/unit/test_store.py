import json

import pytest
import torch

from sae_unlearn.capture import ActivationBatch, ActivationStore
from sae_unlearn.capture.store import MANIFEST, ShardWriter

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def batches(n=5, rows=7, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        ActivationBatch(
            activations={h: torch.randn(rows, d, generator=g) for h in HOOKS},
            token_ids=torch.randint(0, 50, (rows,), generator=g),
            seq_index=torch.full((rows,), i),
            position=torch.arange(rows),
        )
        for i in range(n)
    ]


def test_disk_store_equals_memory_store(tmp_path):
    bs = batches()
    mem = ActivationStore.from_batches(bs, HOOKS)
    w = ShardWriter(tmp_path / "c", HOOKS, shard_tokens=10)
    for b in bs:
        w.add(b)
    w.finish()
    disk = ActivationStore.from_disk(tmp_path / "c")
    assert disk.on_disk and len(list(disk.iter_shards())) == 3  # 14, 14, 7 rows
    for h in HOOKS:
        torch.testing.assert_close(disk[h], mem[h], rtol=0, atol=0)
        assert disk.mean_norm(h) == pytest.approx(mem.mean_norm(h))
    assert torch.equal(disk.seq_index, mem.seq_index) and disk.n_tokens == 35


def test_interrupted_writer_resumes_after_last_shard(tmp_path):
    bs = batches()
    w = ShardWriter(tmp_path / "c", HOOKS, shard_tokens=10, meta={"key": "k"})
    for b in bs[:3]:
        w.add(b)  # a shard of 2 batches is flushed; the 3rd batch is lost with the "crash"
    del w
    w2 = ShardWriter(tmp_path / "c", HOOKS, shard_tokens=10, meta={"key": "k"})
    assert not w2.complete and w2.next_batch == 2
    for b in bs[w2.next_batch :]:
        w2.add(b)
    w2.finish()
    full = ActivationStore.from_batches(bs, HOOKS)
    torch.testing.assert_close(ActivationStore.from_disk(tmp_path / "c")[HOOKS[1]], full[HOOKS[1]], rtol=0, atol=0)


def test_changed_meta_starts_over_and_incomplete_cache_refuses(tmp_path):
    w = ShardWriter(tmp_path / "c", HOOKS, shard_tokens=10, meta={"key": "a"})
    for b in batches()[:2]:
        w.add(b)
    with pytest.raises(ValueError, match="incomplete"):
        ActivationStore.from_disk(tmp_path / "c")
    w2 = ShardWriter(tmp_path / "c", HOOKS, shard_tokens=10, meta={"key": "b"})
    assert w2.next_batch == 0 and json.loads((tmp_path / "c" / MANIFEST).read_text())["shards"] == []


def test_iter_batches_shuffle_is_seeded_and_covers_all_rows():
    store = ActivationStore.from_batches(batches(), HOOKS)
    a = torch.cat(list(store.iter_batches(HOOKS[0], 8, shuffle=True, seed=3)))
    b = torch.cat(list(store.iter_batches(HOOKS[0], 8, shuffle=True, seed=3)))
    assert torch.equal(a, b) and not torch.equal(a, store[HOOKS[0]])
    torch.testing.assert_close(a.sum(0), store[HOOKS[0]].sum(0))


def test_unknown_hook_in_store():
    store = ActivationStore.from_batches(batches(), HOOKS)
    with pytest.raises(KeyError, match="was not captured"):
        store["blocks.3.hook_resid_post"]


def test_last_token_rows_and_select_rows(no_runtime_typecheck):
    store = ActivationStore.from_batches(batches(n=3, rows=5), HOOKS)
    last = store.last_token_rows()
    assert last.tolist() == [False] * 4 + [True] + [False] * 4 + [True] + [False] * 4 + [True]
    kept = store.select_rows(last)
    assert kept.n_tokens == 3 and kept.seq_index.tolist() == [0, 1, 2] and kept.position.tolist() == [4, 4, 4]
    for h in HOOKS:
        torch.testing.assert_close(kept[h], store[h][last], rtol=0, atol=0)
    with pytest.raises(ValueError, match="flags no row"):
        store.select_rows(torch.zeros(15, dtype=torch.bool))
    with pytest.raises(TypeError, match="must be a bool tensor"):
        store.select_rows(last.long())
