"""Streaming selection keeps no activations yet agrees with the stored path: same layer, same
latents, same scores, same SAE statistics, on both zoo corpora; a wrong SAE is refused on the
first batch."""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.pipeline import pipeline_data, sae_stage
from sae_unlearn.saes import SAEFitConfig, SAEMismatchError, reconstruction_stats
from sae_unlearn.selection.streaming import select_layer_and_latents_streaming
from sae_unlearn.unlearning.base import EDIT_DEPTH

pytestmark = pytest.mark.integration


def _assert_same_selection(stored, streamed, rtol: float | None = None) -> None:
    """Same layer, scores, intervals and latents; statistics equal to float32 rounding (``rtol``:
    looser, where the two paths encode different batches of rows and the float32 codes differ
    in their last bits)."""
    tol = {} if rtol is None else {"rtol": rtol, "atol": 1e-7}
    # codes equal to float32 rounding can reorder two nearly equal texts (one pair of the AUROC, a
    # bootstrap percentile)
    score_tol = 1e-9 if rtol is None else 1e-3
    assert streamed.hook == stored.hook and streamed.layer == stored.layer
    assert streamed.layer_scores.keys() == stored.layer_scores.keys()
    for h, score in stored.layer_scores.items():
        assert streamed.layer_scores[h] == pytest.approx(score, abs=score_tol), h
        assert streamed.layer_score_intervals[h] == pytest.approx(stored.layer_score_intervals[h], abs=score_tol), h
        a, b = stored.selections[h], streamed.selections[h]
        assert torch.equal(a.relevant, b.relevant), h
        assert torch.equal(a.irrelevant, b.irrelevant), h
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.stats.freq_forget, b.stats.freq_forget)
        torch.testing.assert_close(a.stats.sq_mean_retain, b.stats.sq_mean_retain, **tol)


@pytest.mark.parametrize("block_rows", [None, 7], ids=["whole batches", "7-token encode blocks"])
def test_streaming_agrees_with_the_stored_path_on_secrets(secrets_model, stage, monkeypatch, block_rows):
    from sae_unlearn.selection import streaming

    data, st = stage
    if block_rows is not None:  # a batch's tokens encoded a few at a time: the same selection
        width = next(iter(st.fit.saes.values())).cfg.d_sae
        monkeypatch.setattr(streaming, "ENCODE_BLOCK_BYTES", 4 * width * block_rows)
    streamed = sae_stage(secrets_model, data, None, saes=st.fit.saes, n_latents=64, streaming=True, progress=False)
    assert streamed.store is None and streamed.forget_mask is None
    # in blocks of other sizes the float32 matmuls round differently in the last bits
    _assert_same_selection(st.selection, streamed.selection, rtol=None if block_rows is None else 1e-5)
    assert torch.equal(streamed.subspaces.relevant.basis, st.subspaces.relevant.basis)
    # the reconstruction statistics gathered on the way equal the stored path's on every token
    for h, sae in st.fit.saes.items():
        want = reconstruction_stats(sae, st.store[h]).to_dict()
        got = streamed.fit.stats[h].to_dict()
        assert got["n_tokens"] == want["n_tokens"] and got["l0"] == pytest.approx(want["l0"], rel=1e-9)
        assert got["dead_fraction"] == pytest.approx(want["dead_fraction"])
        assert got["explained_variance"] == pytest.approx(want["explained_variance"], rel=1e-6)
        assert got["mse"] == pytest.approx(want["mse"], rel=1e-5)


@pytest.mark.tofu
def test_streaming_agrees_with_the_stored_path_on_tofu_mini(tmp_path):
    from sae_unlearn.models import load_zoo_model

    model = load_zoo_model("tofu-mini", device="cpu", progress=False)
    data = pipeline_data("tofu-mini")
    stored = sae_stage(model, data, tmp_path, SAEFitConfig(training_samples=40_000), n_latents=32, progress=False)
    editable = [h for h in stored.fit.saes if hook_layer(h) >= EDIT_DEPTH - 1]  # as sae_stage chooses
    streamed = select_layer_and_latents_streaming(
        model, stored.fit.saes, data.forget_texts, data.retain_texts, n_latents=32, candidates=editable, progress=False
    )
    _assert_same_selection(stored.selection, streamed)


def test_a_wrong_sae_is_refused_on_the_first_batch(secrets_model, stage, monkeypatch):
    data, st = stage
    saes = dict(st.fit.saes)
    saes["blocks.1.hook_resid_post"], saes["blocks.2.hook_resid_post"] = (
        saes["blocks.2.hook_resid_post"],
        saes["blocks.1.hook_resid_post"],
    )
    import sae_unlearn.selection.streaming as streaming

    encoded = []
    real = streaming.sae_encode
    monkeypatch.setattr(streaming, "sae_encode", lambda sae, x, hook: encoded.append(1) or real(sae, x, hook))
    with pytest.raises(SAEMismatchError, match="trained on 'blocks.2.hook_resid_post'"):
        select_layer_and_latents_streaming(secrets_model, saes, data.forget_texts, data.retain_texts, progress=False)
    assert len(encoded) <= 1  # stopped within the first batch
    with pytest.raises(ValueError, match="streaming=True needs given SAEs"):
        sae_stage(secrets_model, data, None, streaming=True, progress=False)
    with pytest.raises(TypeError, match="forget_texts is a single string"):
        select_layer_and_latents_streaming(secrets_model, st.fit.saes, data.forget_texts[0], data.retain_texts)


def test_the_stored_path_reads_the_store_in_chunks_with_the_same_result(stage, monkeypatch):
    import sae_unlearn.selection.layers as layers
    from sae_unlearn.selection import select_layer_and_latents

    data, st = stage
    monkeypatch.setattr(layers, "SELECTION_CHUNK_ROWS", 777)  # chunks that cut texts and shards anywhere
    again = select_layer_and_latents(
        st.fit.saes, st.store, st.forget_mask, n_latents=64, candidates=[h for h in st.fit.saes if hook_layer(h) >= 2]
    )
    _assert_same_selection(st.selection, again)


def _dead(sae):
    """A copy of ``sae`` that never fires (its encoder bias far below any pre-activation)."""
    import copy

    dead = copy.deepcopy(sae)
    with torch.no_grad():
        dead.b_enc.fill_(-1e6)
    return dead


def _few_texts(data):
    return data.forget_texts[:24], data.retain_texts[:48]


def test_one_pass_over_the_model_and_the_spill_is_removed(secrets_model, stage, tmp_path, monkeypatch):
    import sae_unlearn.selection.streaming as streaming
    from sae_unlearn.capture import capture_activations
    from sae_unlearn.selection import select_layer_and_latents

    data, st = stage
    forget, retain = _few_texts(data)
    batches = []
    real = streaming.iter_activations
    monkeypatch.setattr(
        streaming, "iter_activations", lambda *a, **kw: (batches.append(1) or b for b in real(*a, **kw))
    )
    streamed = select_layer_and_latents_streaming(
        secrets_model, st.fit.saes, forget, retain, 16, batch_size=16, max_length=24, spill_dir=tmp_path, progress=False
    )
    assert len(batches) == -(-(len(forget) + len(retain)) // 16)  # every batch once: one pass
    assert list(tmp_path.iterdir()) == []  # the code files are gone
    store = capture_activations(secrets_model, forget + retain, list(st.fit.saes), max_length=24, progress=False)
    stored = select_layer_and_latents(st.fit.saes, store, store.seq_index < len(forget), 16)
    _assert_same_selection(stored, streamed, rtol=1e-5)


def test_a_hook_whose_sae_never_fires_is_skipped_on_both_paths(secrets_model, stage):
    from sae_unlearn.capture import capture_activations
    from sae_unlearn.selection import select_layer_and_latents

    data, st = stage
    forget, retain = _few_texts(data)
    hooks = list(st.fit.saes)
    dead_hook = hooks[-1]  # the deepest: deepest_tied would take it if it were scored
    saes = {**st.fit.saes, dead_hook: _dead(st.fit.saes[dead_hook])}
    store = capture_activations(secrets_model, forget + retain, hooks, max_length=24, progress=False)
    mask = store.seq_index < len(forget)
    with pytest.warns(UserWarning, match=f"{dead_hook} is left out of the layer choice.*no latent fires"):
        stored = select_layer_and_latents(saes, store, mask, 16)
    with pytest.warns(UserWarning, match=f"{dead_hook} is left out of the layer choice.*no latent fires"):
        streamed = select_layer_and_latents_streaming(
            secrets_model, saes, forget, retain, 16, batch_size=32, max_length=24, progress=False
        )
    for result in (stored, streamed):
        assert result.hook != dead_hook and result.skipped == {dead_hook: "no latent fires on the forget data"}
        assert result.layer_scores[dead_hook] == 0.5 and result.layer_score_intervals[dead_hook] == (0.5, 0.5)
        assert len(result.selections[dead_hook].relevant) == 0 and len(result.latents.relevant) == 16
    _assert_same_selection(stored, streamed, rtol=1e-5)
    # without the dead hook, the same choice among the others
    alive = {h: s for h, s in saes.items() if h != dead_hook}
    assert select_layer_and_latents(alive, store, mask, 16).hook == stored.hook
    # every hook dead: one error naming them all, after the one pass
    with pytest.raises(ValueError, match="no hook has a forget-specific SAE latent.*" + ".*".join(hooks)):
        select_layer_and_latents_streaming(
            secrets_model,
            {h: _dead(s) for h, s in saes.items()},
            forget,
            retain,
            16,
            batch_size=32,
            max_length=24,
            progress=False,
        )
