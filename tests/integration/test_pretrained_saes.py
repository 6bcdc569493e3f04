"""Pretrained SAEs in the pipeline, offline: saved SAEs reloaded as pretrained give the same
selection; a JumpReLU SAE in Gemma Scope's folder format loads and runs; registry ids are checked
against sae-lens's bundled pretrained_saes.yaml with close matches; resid_pre sites edit the
blocks before them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_unlearn.capture import capture_activations
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.pipeline import sae_stage
from sae_unlearn.saes import SAEMismatchError, check_pretrained_id, load_saes
from sae_unlearn.unlearning import default_params

pytestmark = pytest.mark.integration


def test_saved_saes_loaded_as_pretrained_give_the_same_layer_and_latents(stage, secrets_model):
    data, st = stage
    saes = load_saes(st.fit.path)  # the fit_saes folder, as a user would pass it
    again = sae_stage(secrets_model, data, None, saes=saes, n_latents=64, progress=False)
    assert again.fit.pretrained and again.fit.config is None
    assert again.selection.hook == st.selection.hook
    assert torch.equal(again.selection.latents.relevant, st.selection.latents.relevant)
    assert torch.equal(again.selection.latents.irrelevant, st.selection.latents.irrelevant)
    # one SAE folder of sae-lens's format, alone: only its hook is captured and chosen
    hook = st.selection.hook
    one = sae_stage(secrets_model, data, None, saes=st.fit.path / hook, n_latents=64, progress=False)
    assert one.store.hooks == [hook] and one.selection.hook == hook and one.fit.source == str(st.fit.path / hook)


def _gemma_scope_folder(root, d_in: int, d_sae: int, seed: int = 0):
    """A Gemma Scope-layout SAE (params.npz: W_enc [d_in, d_sae], W_dec, b_enc, b_dec, threshold)."""
    g = np.random.default_rng(seed)
    folder = root / "layer_2" / "width_1k" / "average_l0_20"
    folder.mkdir(parents=True)
    w_dec = g.normal(size=(d_sae, d_in)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    params = {
        "W_enc": (w_dec.T * 0.05).astype(np.float32),
        "W_dec": w_dec,
        "b_enc": np.zeros(d_sae, np.float32),
        "b_dec": np.zeros(d_in, np.float32),
        "threshold": np.full(d_sae, 0.3, np.float32),
    }
    np.savez(folder / "params.npz", **params)
    return folder, params


def test_gemma_scope_folder_loads_as_jumprelu_and_runs(tmp_path, secrets_model, stage):
    data, _ = stage
    folder, params = _gemma_scope_folder(tmp_path, d_in=128, d_sae=256)
    saes = load_saes(folder)
    assert list(saes) == ["blocks.2.hook_resid_post"]
    sae = saes["blocks.2.hook_resid_post"]
    assert sae.cfg.architecture() == "jumprelu"
    x = capture_activations(secrets_model, data.forget_texts[:8], ["blocks.2.hook_resid_post"], progress=False)[
        "blocks.2.hook_resid_post"
    ]
    pre = x @ torch.tensor(params["W_enc"]) + torch.tensor(params["b_enc"])
    expected = torch.relu(pre) * (pre > torch.tensor(params["threshold"]))  # Gemma Scope's JumpReLU
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), expected)
        assert bool((sae.encode(x) > 0).any())
    st = sae_stage(secrets_model, data, None, saes=folder, n_latents=16, progress=False)
    assert st.selection.hook == "blocks.2.hook_resid_post" and len(st.selection.latents.relevant) >= 1


def test_an_sae_of_another_width_is_refused_before_selection(tmp_path, secrets_model, stage):
    data, _ = stage
    folder, _ = _gemma_scope_folder(tmp_path, d_in=64, d_sae=128)
    with pytest.raises(SAEMismatchError, match="expects d_in=64 but the activations there are 128 wide"):
        sae_stage(secrets_model, data, None, saes=folder, n_latents=16, progress=False)


def test_registry_ids_are_checked_offline_with_close_matches():
    check_pretrained_id("gpt2-small-res-jb", "blocks.8.hook_resid_pre")  # in the bundled registry
    with pytest.raises(ValueError, match=r"release 'gpt2-small-res-jbb' .*close matches: \['gpt2-small-res-jb'"):
        check_pretrained_id("gpt2-small-res-jbb", "blocks.8.hook_resid_pre")
    not_there = r"id 'blocks.8.hook_resid_post' is not in release .*'blocks.8.hook_resid_pre'"
    with pytest.raises(ValueError, match=not_there):
        check_pretrained_id("gpt2-small-res-jb", "blocks.8.hook_resid_post")
    with pytest.raises(ValueError, match="close matches"):
        load_saes("gemma-scope-2b-pt-res-canonicall:layer_12/width_16k/canonical")


def test_resid_pre_sites_edit_the_blocks_before_them(secrets_model):
    assert last_writer_layer("blocks.3.hook_resid_pre") == 2 and last_writer_layer("blocks.0.hook_resid_pre") is None
    assert last_writer_layer("blocks.3.hook_resid_post") == 3 and last_writer_layer("hook_embed") is None
    names = default_params(secrets_model, "blocks.3.hook_resid_pre")
    assert names == [f"model.layers.{l}.mlp.down_proj.weight" for l in (0, 1, 2)]
    with pytest.raises(ValueError, match="no block writes into 'blocks.0.hook_resid_pre'"):
        default_params(secrets_model, "blocks.0.hook_resid_pre")


def test_demo_refuses_an_sae_of_another_width_before_writing(tmp_path, stage):
    from sae_unlearn.demo import DemoConfig, run_demo

    folder, _ = _gemma_scope_folder(tmp_path, d_in=64, d_sae=128)  # the secrets model is 128 wide
    out = tmp_path / "demo_out"
    with pytest.raises(SAEMismatchError, match="expects d_in=64 but the activations there are 128 wide"):
        run_demo(DemoConfig(out=str(out), saes=str(folder), progress=False))
    assert not out.exists()  # nothing written
