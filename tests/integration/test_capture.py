"""Capture is exact (equals run_with_cache), single-pass, stops early and masks padding."""

import pytest
import torch

from sae_unlearn.capture import capture_activations, iter_activations, run_and_capture
from sae_unlearn.models import HookNameError

pytestmark = pytest.mark.integration

TEXTS = [
    "Q: Where does Alva Abernathy live? A: Oslo.",
    "Hi.",
    "The offices of Vantor Labs are in Oslo.",
    "By profession, someone is a pilot and lives with a cat.",
    "x",
]
HOOKS = ["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post", "blocks.2.hook_resid_post"]


def test_values_equal_run_with_cache_on_the_same_batch(secrets_model):
    """Bit-exact: capture and run_with_cache see the same padded batch."""
    batch = secrets_model.tokenize(TEXTS)
    raw = run_and_capture(secrets_model, batch.input_ids, HOOKS)
    _, cache = secrets_model.bridge.run_with_cache(batch.input_ids, names_filter=HOOKS)
    for h in HOOKS:
        torch.testing.assert_close(raw[h], cache[h], rtol=0, atol=0)


def test_values_equal_run_with_cache_per_unpadded_text(secrets_model):
    """Right padding changes nothing for real tokens (up to float32 rounding of other batch shapes)."""
    store = capture_activations(secrets_model, TEXTS, HOOKS, batch_size=3, drop_bos=False, progress=False)
    for i, text in enumerate(TEXTS):
        ids = secrets_model.tokenize(text).input_ids
        _, cache = secrets_model.bridge.run_with_cache(ids, names_filter=HOOKS)
        rows = store.seq_index == i
        assert int(rows.sum()) == ids.shape[1]
        for h in HOOKS:
            torch.testing.assert_close(store[h][rows], cache[h][0], rtol=1e-6, atol=1e-5)
        assert torch.equal(store.token_ids[rows], ids[0])


def test_padding_and_bos_are_masked(secrets_model):
    lengths = [secrets_model.tokenize(t).input_ids.shape[1] for t in TEXTS]
    store = capture_activations(secrets_model, TEXTS, HOOKS[:1], batch_size=5, drop_bos=True, progress=False)
    assert store.n_tokens == sum(lengths) - len(TEXTS)
    assert int(store.position.min()) == 1 and not (store.token_ids == secrets_model.tokenizer.pad_token_id).any()


def test_one_forward_per_batch_stopping_at_the_deepest_layer(secrets_model):
    counts = {"embed": 0, "deeper": 0}

    def count(key):
        def fn(t, hook):
            counts[key] += 1
            return t

        return fn

    with secrets_model.bridge.hooks(
        fwd_hooks=[("hook_embed", count("embed")), ("blocks.3.hook_resid_post", count("deeper"))]
    ):
        batches = list(
            iter_activations(
                secrets_model,
                TEXTS,
                ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"],
                batch_size=2,
                progress=False,
            )
        )
    assert len(batches) == 3 and counts["embed"] == 3  # one pass per batch, all hooks in it
    assert counts["deeper"] == 0  # block 3 never ran


def test_hooks_are_removed_after_capture_even_on_error(secrets_model):
    with pytest.raises(HookNameError):
        run_and_capture(secrets_model, secrets_model.tokenize("hi").input_ids, ["blocks.1.nope"])
    run_and_capture(secrets_model, secrets_model.tokenize("hi").input_ids, ["blocks.1.hook_resid_post"])
    assert all(not hp.fwd_hooks for hp in secrets_model.bridge.hook_dict.values())


def test_bad_hook_names_list_the_valid_ones(secrets_model):
    with pytest.raises(HookNameError, match=r"layer 7 out of range for a model with 4 layers"):
        capture_activations(secrets_model, TEXTS, ["blocks.7.hook_resid_post"], progress=False)
    with pytest.raises(HookNameError, match=r"blocks\.\{0-3\}\.hook_resid_post"):
        capture_activations(secrets_model, TEXTS, ["blocks.1.hook_resid"], progress=False)
    with pytest.raises(ValueError, match="no texts"):
        capture_activations(secrets_model, [], HOOKS, progress=False)
    with pytest.raises(ValueError, match="attention patterns"):
        capture_activations(secrets_model, TEXTS, ["blocks.0.attn.hook_pattern"], progress=False)


def test_disk_cache_equals_memory_is_reused_and_resumes(secrets_model, tmp_path, monkeypatch):
    mem = capture_activations(secrets_model, TEXTS, HOOKS, batch_size=2, progress=False)
    disk = capture_activations(
        secrets_model, TEXTS, HOOKS, batch_size=2, cache_dir=tmp_path, shard_tokens=20, progress=False
    )
    assert disk.on_disk
    for h in HOOKS:
        torch.testing.assert_close(disk[h], mem[h], rtol=0, atol=0)
    # asked again: served from disk, the model is not run
    import sae_unlearn.capture.capture as cap

    def boom(*a, **k):
        raise AssertionError("model ran although the capture was cached")

    monkeypatch.setattr(cap, "run_and_capture", boom)
    again = capture_activations(
        secrets_model, TEXTS, HOOKS, batch_size=2, cache_dir=tmp_path, shard_tokens=20, progress=False
    )
    torch.testing.assert_close(again[HOOKS[0]], mem[HOOKS[0]], rtol=0, atol=0)


def test_interrupted_disk_capture_resumes(secrets_model, tmp_path, monkeypatch):
    import sae_unlearn.capture.capture as cap

    real = cap.run_and_capture
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(cap, "run_and_capture", flaky)
    with pytest.raises(KeyboardInterrupt):
        capture_activations(
            secrets_model, TEXTS, HOOKS, batch_size=1, cache_dir=tmp_path, shard_tokens=1, progress=False
        )
    calls["n"] = 100
    store = capture_activations(
        secrets_model, TEXTS, HOOKS, batch_size=1, cache_dir=tmp_path, shard_tokens=1, progress=False
    )
    assert calls["n"] == 100 + len(TEXTS) - 2  # the two finished batches were not redone
    mem = capture_activations(secrets_model, TEXTS, HOOKS, batch_size=1, progress=False)
    torch.testing.assert_close(store[HOOKS[2]], mem[HOOKS[2]], rtol=0, atol=0)


@pytest.mark.gpu
def test_capture_on_gpu_matches_cpu(secrets_model):
    from sae_unlearn.models import load_model

    gpu_model = load_model(secrets_model.source, device="cuda")
    cpu = capture_activations(secrets_model, TEXTS, HOOKS, progress=False)
    gpu = capture_activations(gpu_model, TEXTS, HOOKS, progress=False)
    torch.testing.assert_close(gpu[HOOKS[2]], cpu[HOOKS[2]], rtol=1e-4, atol=1e-4)
