"""SAEs read as they were trained (sae_unlearn.saes.inputs), on random activations: SAEs fitted here
on activations prepared one way, with metadata saying so, explain the plain activations when the
metadata is honoured and much less when it is ignored; settings that cannot be honoured warn."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from sae_unlearn import intervention_runtime as runtime
from sae_unlearn.interventions import SAEIntervention
from sae_unlearn.saes import (
    SAEFitConfig,
    SAEMetadataWarning,
    encode_batched,
    fold_norm_scaling_factor,
    prepare_sae_input,
    reconstruction_stats,
    sae_input_spec,
)
from sae_unlearn.saes.inputs import sae_reconstruct
from tests.metadata_saes import pca_sae, with_metadata

HOOK = "blocks.1.hook_resid_post"
CENTRED = {"center_writing_weights": True}
# sae-lens warns on every SAE with model_from_pretrained_kwargs (to load the model with HookedSAETransformer)
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*This SAE has non-empty model_from_pretrained_kwargs")


def _low_rank(n: int = 3000, d: int = 48, rank: int = 6, seed: int = 0) -> torch.Tensor:
    """Activations spread over ``rank`` directions plus a little noise in every other one."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, rank, generator=g))[0].T
    return 3 * torch.randn(n, rank, generator=g) @ basis + 0.05 * torch.randn(n, d, generator=g)


def _centred_and_plain(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """TransformerLens-like activations (zero mean over d_model per token) and the plain model's:
    the same plus a per-token multiple of the all-ones vector (what centred writing weights remove)."""
    x = _low_rank(seed=seed)
    centred = x - x.mean(-1, keepdim=True)
    g = torch.Generator().manual_seed(seed + 1)
    return centred, centred + 2 * torch.randn(x.shape[0], 1, generator=g)


def test_a_centred_sae_explains_the_plain_activations_only_when_its_metadata_is_honoured():
    centred, plain = _centred_and_plain()
    sae = pca_sae(centred[:2000], 6, HOOK, model_from_pretrained_kwargs=CENTRED)
    ignored = with_metadata(sae, model_from_pretrained_kwargs=None)
    held_out_centred, held_out_plain = centred[2000:], plain[2000:]
    trained = reconstruction_stats(sae, held_out_centred).explained_variance  # what it was trained on
    honoured = reconstruction_stats(sae, held_out_plain, hook=HOOK).explained_variance
    lost = reconstruction_stats(ignored, held_out_plain, hook=HOOK).explained_variance
    assert trained > 0.99 and honoured == pytest.approx(trained, abs=1e-6)
    assert lost < 0.5  # the per-token mean is neither reconstructed nor harmless to the codes
    # the codes (what the selection scores) are those of the activations it was trained on
    torch.testing.assert_close(encode_batched(sae, held_out_plain, hook=HOOK), sae.encode(held_out_centred))
    assert (encode_batched(ignored, held_out_plain, hook=HOOK) - sae.encode(held_out_centred)).abs().max() > 1


@pytest.mark.parametrize(
    "hook",
    [
        "blocks.1.hook_resid_pre",
        "blocks.1.hook_resid_mid",
        "blocks.1.hook_resid_post",
        "blocks.1.hook_attn_out",
        "blocks.1.hook_mlp_out",
        "hook_embed",
    ],
)
def test_residual_sites_are_centred(hook):
    sae = pca_sae(_low_rank(200), 4, hook, model_from_pretrained_kwargs=CENTRED)
    assert sae_input_spec(sae).centre and runtime.centred_input(sae.cfg.to_dict())
    x = torch.randn(5, 48) + 3
    torch.testing.assert_close(prepare_sae_input(sae, x), x - x.mean(-1, keepdim=True))
    assert not sae_input_spec(with_metadata(sae, model_from_pretrained_kwargs=None)).centre


@pytest.mark.parametrize(
    "hook", ["blocks.1.mlp.hook_post", "blocks.1.attn.hook_z", "blocks.1.ln1.hook_normalized", "ln_final.hook_scale"]
)
def test_sites_behind_a_layernorm_are_left_as_they_are_without_warning(hook):
    sae = pca_sae(_low_rank(200), 4, hook, model_from_pretrained_kwargs=CENTRED)
    x = torch.randn(5, 48) + 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAEMetadataWarning)
        assert torch.equal(prepare_sae_input(sae, x), x)
    assert not sae_input_spec(sae).centre


def test_the_exported_sparse_coder_centres_as_the_toolkit_does():
    centred, plain = _centred_and_plain()
    sae = pca_sae(centred[:2000], 6, HOOK, model_from_pretrained_kwargs=CENTRED)
    coder = runtime.SparseCoder(sae.cfg.to_dict(), dict(sae.state_dict()))
    assert coder.centre
    torch.testing.assert_close(coder.encode(plain[:50]), encode_batched(sae, plain[:50], hook=HOOK))
    plain_coder = runtime.SparseCoder(
        with_metadata(sae, model_from_pretrained_kwargs=None).cfg.to_dict(), sae.state_dict()
    )
    assert not plain_coder.centre


def test_edits_are_written_back_in_the_plain_models_space():
    centred, plain = _centred_and_plain()
    sae = pca_sae(centred[:2000], 6, HOOK, model_from_pretrained_kwargs=CENTRED)
    x = plain[:12].reshape(2, 6, -1)
    mean = x.mean(-1, keepdim=True)
    # splicing: the reconstruction of the centred activation, plus the mean the centring removed
    torch.testing.assert_close(sae_reconstruct(sae, x, HOOK), sae(x - mean) + mean)
    # an intervention adds the difference of decodings (of the centred activation's codes) to x itself
    iv = SAEIntervention(hook=HOOK, sae=sae, rule="zero", latents=[0, 1, 2], values=[0.0] * 3)
    f = sae.encode(x - mean)
    g = f.clone()
    g[..., :3] = 0
    want = x + sae.decode(g) - sae.decode(f)
    want[:, 0] = x[:, 0]  # a text's first token is never rewritten
    torch.testing.assert_close(iv(x), want)


def test_an_expected_average_only_in_sae_gets_its_scaling_factor_estimated_and_folded():
    x = _low_rank() + 20 * torch.ones(48)  # a large mean: scaling it wrongly costs most of the variance
    factor = math.sqrt(48) / float(x[:2000].norm(dim=-1).mean())  # what sae-lens's training estimates
    sae = pca_sae(x[:2000] * factor, 6, HOOK, normalize_activations="expected_average_only_in")
    with pytest.warns(SAEMetadataWarning, match="without its scaling factor.*fed unscaled"):
        unscaled = reconstruction_stats(sae, x[2000:], hook=HOOK).explained_variance
    with pytest.warns(SAEMetadataWarning, match=r"estimated on 500 activations .*sqrt\(d_in\) / mean norm"):
        folded = fold_norm_scaling_factor(sae, x[2500:], HOOK)  # estimated on other rows than it was trained on
    assert folded is not sae and sae.cfg.normalize_activations == "expected_average_only_in"  # a copy
    assert folded.cfg.normalize_activations == "none"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAEMetadataWarning)
        honoured = reconstruction_stats(folded, x[2000:], hook=HOOK).explained_variance
    assert honoured > 0.99 and unscaled < 0.5
    assert fold_norm_scaling_factor(folded, x[:10], HOOK) is folded  # nothing left to fold


@pytest.mark.parametrize("norm", ["layer_norm", "constant_norm_rescale"])
def test_run_time_normalisations_survive_the_interventions_two_decodes(norm):
    x = (_low_rank(40) + 5).reshape(4, 10, -1)
    sae = pca_sae(x.reshape(-1, 48), 6, HOOK, normalize_activations=norm)
    iv = SAEIntervention(hook=HOOK, sae=sae, rule="scale", latents=[0, 3], values=[2.0, 2.0])
    out = iv(x)  # sae-lens drops the per-token scale in its first decode; the codec keeps it for the second
    if norm == "layer_norm":
        mu, std = x.mean(-1, keepdim=True), x.sub(x.mean(-1, keepdim=True)).std(-1, keepdim=True)
        xn, back = (x - mu) / (std + 1e-5), lambda y: y * std + mu
    else:
        coeff = math.sqrt(48) / x.norm(dim=-1, keepdim=True)
        xn, back = x * coeff, lambda y: y / coeff
    f = torch.relu((xn - sae.b_dec) @ sae.W_enc + sae.b_enc)
    g = f.clone()
    g[..., [0, 3]] *= -2.0
    want = x + back(g @ sae.W_dec + sae.b_dec) - back(f @ sae.W_dec + sae.b_dec)
    want[:, 0] = x[:, 0]
    torch.testing.assert_close(out, want, atol=1e-4, rtol=1e-4)


def test_activations_are_cast_to_the_saes_dtype():
    x = _low_rank(300)
    sae = pca_sae(x, 6, HOOK)
    low = x.to(torch.bfloat16)
    assert prepare_sae_input(sae, low).dtype == torch.float32
    assert reconstruction_stats(sae, low, hook=HOOK).explained_variance > 0.98
    half = pca_sae(x, 6, HOOK).to(torch.bfloat16)
    assert prepare_sae_input(half, x).dtype == torch.bfloat16
    assert encode_batched(half, x, hook=HOOK).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("hook", "metadata", "match"),
    [
        ("blocks.1.attn.hook_z", {"hook_head_index": 2}, "hook_head_index=2: the SAE read one attention head"),
        ("blocks.1.ln1.hook_normalized", {"model_from_pretrained_kwargs": {"fold_ln": True}}, "fold_ln"),
        ("blocks.1.attn.hook_z", {"model_from_pretrained_kwargs": {"fold_value_biases": True}}, "fold_value_biases"),
        (HOOK, {"model_from_pretrained_kwargs": {"revision": "step100"}}, r"\{'revision': 'step100'\} are not applied"),
        (HOOK, {"seqpos_slice": (5, 10)}, r"seqpos_slice=\(5, 10\)"),
        ("blocks.1.attn.hook_hidden_states", {"model_from_pretrained_kwargs": CENTRED}, "centred writing weights"),
    ],
)
def test_settings_that_cannot_be_honoured_warn_naming_the_sae_and_setting(hook, metadata, match):
    sae = pca_sae(_low_rank(200), 4, hook, **metadata)
    with pytest.warns(SAEMetadataWarning, match=f"the SAE at '{hook}': .*{match}"):
        prepare_sae_input(sae, torch.randn(3, 48))


def test_honoured_settings_do_not_warn():
    meta = {"prepend_bos": True, "context_size": 128, "seqpos_slice": (1, None)}
    kwargs = {"center_writing_weights": True, "fold_ln": True, "dtype": "bfloat16", "n_devices": 1}
    sae = pca_sae(_low_rank(200), 4, HOOK, model_from_pretrained_kwargs=kwargs, **meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAEMetadataWarning)
        prepare_sae_input(sae, torch.randn(3, 48))
    spec = sae_input_spec(sae)
    assert (spec.centre, spec.prepend_bos, spec.context_size, spec.unhonoured) == (True, True, 128, ())


def test_fitted_saes_record_whether_their_texts_had_bos_first():
    cfg = SAEFitConfig()
    assert cfg.sae_config(16, HOOK, "m", "cpu").metadata.prepend_bos is True
    assert cfg.sae_config(16, HOOK, "m", "cpu", prepend_bos=False).metadata.prepend_bos is False


def test_an_sae_without_metadata_is_fed_as_it_is():
    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=16, metadata=SAEMetadata()))
    x = torch.randn(4, 8, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAEMetadataWarning)
        torch.testing.assert_close(prepare_sae_input(sae, x), x.float())
