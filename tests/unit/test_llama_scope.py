"""Llama Scope SAEs from a local folder (``hyperparams.json`` + ``checkpoints/final.safetensors``, the
layout of ``fnlp/Llama3_1-8B-Base-LXR-8x``), on small synthetic folders in that layout (d_model 16,
64 latents; the real ones are 4096 x 32768): the loader gives what sae-lens's own conversion gives,
raw activations in and out, a latent below its threshold is zero; ``load_saes`` recognises one
folder or a folder of them; the registry's Llama Scope ids name their hook offline; the
rehearsal's writer produces folders the loader reads."""

from __future__ import annotations

import json
import math

import pytest
import torch
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from safetensors.torch import save_file

from sae_unlearn.recipes.rehearsal import SAE_FORMATS, _write_llama_scope
from sae_unlearn.recipes.spec import SAESpec, registry_hook
from sae_unlearn.saes import load_saes
from sae_unlearn.saes.pretrained import load_llama_scope_folder

D, N = 16, 64
#: Layer 15's average residual norm at d_model 16, as the registry's scaling factor gives it at 4096.
FACTOR = get_pretrained_saes_directory()["llama_scope_lxr_8x"].norm_scaling_factor["l15r_8x"]
NORM = math.sqrt(D) / FACTOR
HOOK = "blocks.15.hook_resid_post"


def _folder(root, layer: int = 15, seed: int = 0, **overrides):
    """A Llama Scope SAE folder with the real layout, keys and settings (``nn.Linear`` weights)."""
    folder = root / f"Llama3_1-8B-Base-L{layer}R-8x"
    (folder / "checkpoints").mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    weights = {
        "encoder.weight": torch.randn(N, D, generator=g),
        "encoder.bias": torch.randn(N, generator=g) * 0.1,
        "decoder.weight": torch.randn(D, N, generator=g),
        "decoder.bias": torch.randn(D, generator=g),
    }
    save_file(weights, str(folder / "checkpoints" / "final.safetensors"))
    hyper = {
        "d_model": D,
        "d_sae": N,
        "hook_point_in": f"blocks.{layer}.hook_resid_post",
        "hook_point_out": f"blocks.{layer}.hook_resid_post",
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.35546875,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": NORM, "out": NORM},
        "apply_decoder_bias_to_pre_encoder": False,
        "top_k": 50,
        **overrides,
    }
    (folder / "hyperparams.json").write_text(json.dumps({k: v for k, v in hyper.items() if v is not None}))
    return folder, weights


def test_weights_are_transposed_and_the_dataset_norm_folded_in(tmp_path):
    folder, w = _folder(tmp_path)
    saes = load_saes(folder)
    assert list(saes) == [HOOK]
    sae = saes[HOOK]
    s = FACTOR
    assert sae.cfg.architecture() == "jumprelu" and (sae.cfg.d_in, sae.cfg.d_sae) == (D, N)
    assert sae.cfg.normalize_activations == "none" and not sae.cfg.apply_b_dec_to_input
    torch.testing.assert_close(sae.W_enc, w["encoder.weight"].T * s)
    torch.testing.assert_close(sae.W_dec, w["decoder.weight"].T / s)
    torch.testing.assert_close(sae.b_enc, w["encoder.bias"])
    torch.testing.assert_close(sae.b_dec, w["decoder.bias"] / s)
    torch.testing.assert_close(sae.threshold, torch.full((N,), 0.35546875 * s))
    meta = sae.cfg.metadata
    assert (meta.hook_name, meta.model_name, meta.prepend_bos, meta.context_size) == (
        HOOK,
        "meta-llama/Llama-3.1-8B",
        True,
        1024,
    )
    assert meta.llama_scope["norm_activation"] == "dataset-wise"
    assert meta.llama_scope["folded_norm_scaling_factor"]["in"] == pytest.approx(s)


def test_raw_activations_in_and_out_and_a_latent_below_threshold_is_zero(tmp_path):
    folder, w = _folder(tmp_path)
    sae = load_llama_scope_folder(folder)
    s = math.sqrt(D) / NORM
    x = torch.randn(32, D, generator=torch.Generator().manual_seed(1)) * NORM  # raw activations
    # the original: encode the activations scaled to norm sqrt(d_model), decode, scale back
    pre = (x * s) @ w["encoder.weight"].T + w["encoder.bias"]
    f = sae.encode(x)
    below, above = pre <= 0.35546875 * s, pre > 0.35546875 * s
    assert below.any() and above.any() and (pre[below] > 0).any()  # some latents jump to zero from above 0
    assert torch.all(f[below] == 0)
    torch.testing.assert_close(f[above], pre[above])  # kept values pass through unchanged
    torch.testing.assert_close(sae.decode(f), (f @ w["decoder.weight"].T + w["decoder.bias"]) / s)


def test_the_folder_gives_sae_lens_s_own_conversion(tmp_path, monkeypatch):
    """sae-lens's llama_scope loader and SAE.from_pretrained (registry fold) on the same files, offline."""
    import sae_lens.loading.pretrained_sae_loaders as loaders
    from sae_lens import SAE

    folder, _ = _folder(tmp_path)

    def local(repo_id, filename, subfolder=None, **kwargs):
        return str(tmp_path / (f"{subfolder}/{filename}" if subfolder else filename))

    monkeypatch.setattr(loaders, "hf_hub_download", local)
    ref = SAE.from_pretrained("llama_scope_lxr_8x", "l15r_8x", device="cpu")
    ours = load_saes(folder)[HOOK]
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)
    assert (ours.cfg.normalize_activations, ours.cfg.apply_b_dec_to_input) == (
        ref.cfg.normalize_activations,
        ref.cfg.apply_b_dec_to_input,
    )
    for key in ("hook_name", "model_name", "prepend_bos", "context_size", "dataset_path"):
        assert getattr(ours.cfg.metadata, key) == getattr(ref.cfg.metadata, key), key


def test_a_folder_of_layer_folders_loads_each_and_the_hook_comes_from_the_name_when_unrecorded(tmp_path):
    _folder(tmp_path, layer=7)
    _folder(tmp_path, layer=9, seed=1, hook_point_in=None, hook_point_out=None)
    saes = load_saes(tmp_path)
    assert sorted(saes) == ["blocks.7.hook_resid_post", "blocks.9.hook_resid_post"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"act_fn": "topk"}, "act_fn='topk'"),
        ({"norm_activation": "token-wise"}, "norm_activation='token-wise'"),
        ({"dataset_average_activation_norm": None}, "dataset_average_activation_norm"),
        ({"d_sae": 2 * N}, "shapes"),
    ],
)
def test_a_different_dictionary_is_refused(tmp_path, overrides, message):
    folder, _ = _folder(tmp_path, **overrides)
    with pytest.raises(ValueError, match=message):
        load_saes(folder)


def test_a_missing_tensor_is_refused(tmp_path):
    folder, w = _folder(tmp_path)
    save_file({"encoder.weight": w["encoder.weight"]}, str(folder / "checkpoints" / "final.safetensors"))
    with pytest.raises(ValueError, match="lacks"):
        load_saes(folder)


def test_registry_ids_name_their_hook_and_a_wrong_layer_is_refused():
    assert registry_hook("llama_scope_lxr_8x", "l12r_8x") == "blocks.12.hook_resid_post"
    assert registry_hook("llama_scope_lxm_32x", "l3m_32x") == "blocks.3.hook_mlp_out"
    with pytest.raises(ValueError, match="is the SAE of 'blocks.13.hook_resid_post'"):
        SAESpec(release="llama_scope_lxr_8x", ids={"blocks.12.hook_resid_post": "l13r_8x"})


@pytest.mark.parametrize("release", [r for r, (kind, _) in SAE_FORMATS.items() if kind == "llama_scope"])
def test_the_rehearsal_writes_what_the_loader_reads_at_the_registry_path(tmp_path, release):
    entry = get_pretrained_saes_directory()[release]
    sae_id = next(i for i in entry.saes_map if i.startswith("l15r"))
    path = tmp_path / entry.saes_map[sae_id]
    d_sae = _write_llama_scope(path, HOOK, sae_id, D, entry.norm_scaling_factor[sae_id], torch.Generator())
    expansion = int(sae_id.rsplit("_", 1)[1].removesuffix("x"))
    assert d_sae == expansion * D and path.name == f"Llama3_1-8B-Base-L15R-{expansion}x"
    sae = load_saes(tmp_path)[HOOK]
    assert sae.cfg.d_sae == d_sae
    # the written dataset norm is the layer's real one: sae-lens's factor comes back
    assert sae.cfg.metadata.llama_scope["folded_norm_scaling_factor"]["in"] == pytest.approx(
        entry.norm_scaling_factor[sae_id]
    )
