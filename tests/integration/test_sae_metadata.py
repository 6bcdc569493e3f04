"""Pretrained SAEs read as they were trained, on the GPT-2-architecture zoo model: the plain model's
residual minus its per-token mean is TransformerLens's processed residual (centred writing weights);
SAEs fitted here on TransformerLens's activations, on texts with BOS first or without, or on short
contexts, are fed those activations by the SAE stage (explained variance and codes as on their own
training activations, clearly lower when the metadata is ignored); what cannot be honoured warns."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from tokenizers import processors

from sae_unlearn.capture import capture_activations
from sae_unlearn.interventions import SAEIntervention
from sae_unlearn.models import load_zoo_model
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.pipeline import PipelineData, pipeline_data, sae_stage
from sae_unlearn.saes import SAEMetadataWarning, encode_batched, prepare_sae_input, sae_input_spec
from sae_unlearn.saes.inputs import capture_inputs, check_sae_inputs
from sae_unlearn.selection.contexts import latents_on_text
from tests.metadata_saes import pca_sae, with_metadata

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:\s*This SAE has non-empty model_from_pretrained_kwargs"),
]
HOOK = "blocks.2.hook_resid_post"
CENTRED = {"center_writing_weights": True}


@pytest.fixture(scope="module")
def gpt2():
    return load_zoo_model("secrets-gpt2", device="cpu", progress=False)


@pytest.fixture(scope="module")
def no_bos(gpt2):
    """The same model with a tokenizer that adds no BOS (as GPT-2's own does)."""
    tok = copy.deepcopy(gpt2.tokenizer)
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B", special_tokens=[])
    return HookedModel(gpt2.bridge, gpt2.hf_model, tok, gpt2.source)


@pytest.fixture(scope="module")
def data():
    full = pipeline_data("secrets-gpt2")
    return PipelineData(full.name, full.split, full.forget_texts[:24], full.retain_texts[:96])


@pytest.fixture(scope="module")
def transformer_lens(gpt2):
    """The zoo model as sae-lens trains on it: TransformerLens's HookedTransformer with
    ``model_from_pretrained_kwargs={"center_writing_weights": True}`` (no other processing)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(gpt2.source)
    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.n_embd,
        n_layers=c.n_layer,
        n_heads=c.n_head,
        d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner,
        n_ctx=c.n_positions,
        d_vocab=c.vocab_size,
        act_fn=c.activation_function,
        normalization_type="LN",
        eps=c.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel",
    )
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=True,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return tl


def _rows(acts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    keep = mask.bool().clone()
    keep[:, 0] = False  # BOS, left out as the capture leaves it out
    return acts[keep]


def test_the_plain_residual_minus_its_mean_is_transformer_lens_centred_residual(gpt2, transformer_lens, data):
    residual = ["hook_embed", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.1.hook_attn_out"]
    residual += ["blocks.1.hook_mlp_out", HOOK]
    behind_layernorm = ["blocks.1.ln1.hook_normalized", "blocks.1.mlp.hook_post", "blocks.1.attn.hook_z"]
    batch = gpt2.tokenize(data.forget_texts[:8])
    _, cache = transformer_lens.run_with_cache(batch.input_ids)
    plain = capture_activations(gpt2, data.forget_texts[:8], residual + behind_layernorm, progress=False)
    for hook in residual + behind_layernorm:
        width = int(plain[hook].shape[-1]) if plain[hook].dim() == 2 else int(plain[hook][0].numel())
        sae = pca_sae(torch.randn(50, width), 2, hook, model_from_pretrained_kwargs=CENTRED)
        want = _rows(cache[hook], batch.attention_mask)
        got = prepare_sae_input(sae, plain[hook]) if plain[hook].dim() == 2 else plain[hook]
        assert sae_input_spec(sae).centre == (hook in residual)
        torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)
        if hook in residual:  # ... and not the plain activation itself
            assert (plain[hook] - want).abs().max() > 1e-3


def test_the_stage_feeds_a_centred_sae_transformer_lens_activations(gpt2, transformer_lens, data):
    texts = data.forget_texts + data.retain_texts
    batch = gpt2.tokenize(texts)
    _, cache = transformer_lens.run_with_cache(batch.input_ids, names_filter=[HOOK])
    trained_on = _rows(cache[HOOK], batch.attention_mask)
    sae = pca_sae(trained_on, 16, HOOK, prepend_bos=True, model_from_pretrained_kwargs=CENTRED)
    with torch.no_grad():
        error = (sae(trained_on) - trained_on).pow(2).sum()
    on_training = float(1 - error / (trained_on - trained_on.mean(0)).pow(2).sum())
    honoured = sae_stage(gpt2, data, None, saes={HOOK: sae}, n_latents=4, progress=False)
    ignored = sae_stage(
        gpt2,
        data,
        None,
        saes={HOOK: with_metadata(sae, model_from_pretrained_kwargs=None)},
        n_latents=4,
        progress=False,
    )
    assert honoured.fit.stats[HOOK].explained_variance == pytest.approx(on_training, abs=1e-4)
    assert ignored.fit.stats[HOOK].explained_variance < on_training - 0.002
    # the codes the selection scores: TransformerLens's, not those of the plain residual
    codes = encode_batched(sae, honoured.store[HOOK], hook=HOOK)
    torch.testing.assert_close(codes, sae.encode(trained_on), atol=2e-3, rtol=1e-3)
    assert (
        encode_batched(with_metadata(sae, model_from_pretrained_kwargs=None), honoured.store[HOOK]) - codes
    ).abs().max() > 1


@pytest.mark.parametrize("trained_with_bos", [True, False])
def test_the_stage_tokenizes_as_the_sae_was_trained(gpt2, no_bos, data, trained_with_bos):
    """An SAE trained with BOS first used on a model whose tokenizer adds none, and the reverse."""
    texts = data.forget_texts + data.retain_texts
    trained_model, used_model = (gpt2, no_bos) if trained_with_bos else (no_bos, gpt2)
    trained_on = capture_activations(trained_model, texts, [HOOK], progress=False)[HOOK]
    sae = pca_sae(trained_on, 16, HOOK, prepend_bos=trained_with_bos)
    inputs = capture_inputs(used_model, {HOOK: sae}, texts)
    assert inputs.bos is trained_with_bos
    honoured = sae_stage(used_model, data, None, saes={HOOK: sae}, n_latents=4, progress=False)
    torch.testing.assert_close(honoured.store[HOOK], trained_on, atol=1e-4, rtol=1e-4)
    ignored = sae_stage(
        used_model, data, None, saes={HOOK: with_metadata(sae, prepend_bos=None)}, n_latents=4, progress=False
    )
    ev = honoured.fit.stats[HOOK].explained_variance
    assert ev > 0.9 and ignored.fit.stats[HOOK].explained_variance < ev - 0.02
    if trained_with_bos:  # the streaming selection's capture too
        streamed = sae_stage(used_model, data, None, saes={HOOK: sae}, n_latents=4, progress=False, streaming=True)
        assert streamed.selection.sae_stats[HOOK].explained_variance == pytest.approx(ev, abs=1e-6)
    first = latents_on_text(used_model, sae, HOOK, texts[0])[0]["token"]
    assert (first == used_model.tokenizer.bos_token) is trained_with_bos


def test_texts_past_the_saes_context_are_truncated_with_a_warning(gpt2, data):
    trained_on = capture_activations(gpt2, data.forget_texts, [HOOK], progress=False)[HOOK]
    sae = pca_sae(trained_on, 8, HOOK, prepend_bos=True, context_size=6)
    with pytest.warns(SAEMetadataWarning, match=r"120 of 120 texts are longer than context_size=6 of the SAE at"):
        stage = sae_stage(gpt2, data, None, saes={HOOK: sae}, n_latents=4, progress=False)
    assert int(stage.store.position.max()) == 5
    with warnings.catch_warnings():  # a context no text reaches truncates nothing and says nothing
        warnings.simplefilter("error", SAEMetadataWarning)
        long = sae_stage(
            gpt2, data, None, saes={HOOK: with_metadata(sae, context_size=256)}, n_latents=4, progress=False
        )
    assert int(long.store.position.max()) > 5


def test_saes_that_disagree_on_bos_warn_and_the_tokenizer_decides(gpt2, data):
    acts = capture_activations(gpt2, data.forget_texts[:20], ["blocks.2.hook_resid_pre", HOOK], progress=False)
    saes = {
        "blocks.2.hook_resid_pre": pca_sae(
            acts["blocks.2.hook_resid_pre"], 4, "blocks.2.hook_resid_pre", prepend_bos=False
        ),
        HOOK: pca_sae(acts[HOOK], 4, HOOK, prepend_bos=True),
    }
    with pytest.warns(SAEMetadataWarning, match="disagree on prepend_bos.*BOS first"):
        assert capture_inputs(gpt2, saes, data.forget_texts).bos is None


def test_an_sae_asking_centring_on_an_rmsnorm_model_is_fed_uncentred(secrets_model):
    sae = pca_sae(torch.randn(300, 128), 4, HOOK, model_from_pretrained_kwargs=CENTRED)
    assert sae_input_spec(sae).centre  # read alone, the metadata asks for it
    with pytest.warns(SAEMetadataWarning, match=r"only to LayerNorm models and skips on .*\(RMS\).*uncentred"):
        spec = check_sae_inputs(secrets_model, sae, HOOK)
    assert not spec.centre and sae.cfg.metadata.model_from_pretrained_kwargs["center_writing_weights"] is False
    x = torch.randn(3, 128) + 2
    assert torch.equal(prepare_sae_input(sae, x), x)


def test_installing_an_intervention_whose_sae_saw_another_bos_warns(gpt2, no_bos, data):
    trained_on = capture_activations(gpt2, data.forget_texts[:20], [HOOK], progress=False)[HOOK]
    sae = pca_sae(trained_on, 4, HOOK, prepend_bos=True)
    iv = SAEIntervention(hook=HOOK, sae=sae, rule="zero", latents=[0], values=[0.0])
    with pytest.warns(SAEMetadataWarning, match="trained with BOS first, but the tokenizer .* adds no BOS"):
        no_bos.set_intervention(iv)
    no_bos.clear_intervention()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAEMetadataWarning)
        gpt2.set_intervention(iv)
    gpt2.clear_intervention()
