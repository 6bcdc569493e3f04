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


def _assert_same_selection(stored, streamed) -> None:
    assert streamed.hook == stored.hook and streamed.layer == stored.layer
    assert streamed.layer_scores.keys() == stored.layer_scores.keys()
    for h, score in stored.layer_scores.items():
        assert streamed.layer_scores[h] == pytest.approx(score, abs=1e-9), h
        assert streamed.layer_score_intervals[h] == pytest.approx(stored.layer_score_intervals[h], abs=1e-9), h
        a, b = stored.selections[h], streamed.selections[h]
        assert torch.equal(a.relevant, b.relevant), h
        assert torch.equal(a.irrelevant, b.irrelevant), h
        torch.testing.assert_close(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.stats.freq_forget, b.stats.freq_forget)
        torch.testing.assert_close(a.stats.sq_mean_retain, b.stats.sq_mean_retain)


def test_streaming_agrees_with_the_stored_path_on_secrets(secrets_model, stage):
    data, st = stage
    streamed = sae_stage(secrets_model, data, None, saes=st.fit.saes, n_latents=64, streaming=True, progress=False)
    assert streamed.store is None and streamed.forget_mask is None
    _assert_same_selection(st.selection, streamed.selection)
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
    real = streaming._encode
    monkeypatch.setattr(streaming, "_encode", lambda sae, x: encoded.append(1) or real(sae, x))
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
