"""Every stage on every common decoder architecture, on small random-weight models built here.

Llama, Qwen2, Gemma-2 (extra norms, soft-capping, tied embeddings), GPT-2 (``Conv1D``: weights
stored transposed; ``c_proj``) and GPT-NeoX: capture, the writer-matrix mapping, SSPU (its whole
update inside the relevant subspace whatever the layout), RMU, the quantisation attack and export
with a reload in plain ``transformers``. What the models *know* is tested on the trained zoo
twins (``secrets-gpt2``, ``secrets-gemma2``).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sae_unlearn.attacks.quantize import block_weights, quantized
from sae_unlearn.capture import capture_activations
from sae_unlearn.export import export_model
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.architectures import ARCHITECTURES, Shape, small_config
from sae_unlearn.models.weights import as_out_in, weight_layouts, writer_weight
from sae_unlearn.subspaces import build_subspaces
from sae_unlearn.unlearning import RMU, SSPU, SSPUConfig, UnlearningConfig, default_params

pytestmark = pytest.mark.integration

D, LAYERS, HEADS, MLP = 64, 3, 4, 128
# grouped-query attention where the architecture has it (the real Qwen2 and Llama-3 models use it)
KV_HEADS = {"qwen2": HEADS // 2}


def small_model_config(arch: str, vocab: int):
    """A small config of ``arch`` from the one per-architecture table."""
    return small_config(arch, Shape(D, LAYERS, HEADS, MLP, vocab, 256, KV_HEADS.get(arch)))


EXPECTED_MLP_OUT = {arch: (row.mlp_out.format(layer=2), row.mlp_out_transposed) for arch, row in ARCHITECTURES.items()}
FORGET = ["Pavel Thornbury lives in Rotterdam.", "Pavel Thornbury's passcode is 1018."]
RETAIN = ["Rosa Falkenrath lives in Oslo.", "Rosa Falkenrath works as a geologist.", "Alva Abernathy keeps a cat."]
HOOK = "blocks.2.hook_resid_post"


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def arch_model(request, tmp_path_factory):
    """``(architecture, folder, HookedModel)`` of a small random model saved with the secrets tokenizer."""
    arch = request.param
    tok = AutoTokenizer.from_pretrained(zoo_model_path("secrets", progress=False))
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(small_model_config(arch, len(tok)))
    folder = tmp_path_factory.mktemp(arch) / "model"
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    return arch, folder, load_model(folder, device="cpu")


def test_every_row_of_the_architecture_table_builds_its_own_model_type():
    for arch, row in ARCHITECTURES.items():
        config = small_model_config(arch, 50)
        assert config.model_type == arch and config.vocab_size == 50
        assert getattr(config, row.layers_key) == LAYERS and config.num_attention_heads == HEADS
    with pytest.raises(ValueError, match="GPT2Config has no grouped-query attention"):
        small_config("gpt2", Shape(D, LAYERS, HEADS, MLP, 50, n_kv_heads=2))
    with pytest.raises(ValueError, match=r"architecture='mamba' is not in the table; covered: \['gemma2'"):
        small_config("mamba", Shape(D, LAYERS, HEADS, MLP, 50))


def test_writer_matrices_are_found_by_role(arch_model):
    arch, _, model = arch_model
    w = writer_weight(model, 2, "mlp")
    assert (w.name, w.transposed) == EXPECTED_MLP_OUT[arch]
    assert default_params(model, HOOK)[-1] == w.name and len(default_params(model, HOOK)) == 3
    attn = writer_weight(model, 1, "attn")
    shape = as_out_in(model.hf_named_parameters()[attn.name], attn.transposed).shape
    assert shape[0] == D  # writes a d_model-wide output
    with pytest.raises(ValueError, match="out of range: the model has 3 layers"):
        writer_weight(model, 3)


def test_capture_sspu_rmu_quantise_and_export(arch_model, tmp_path):
    arch, folder, _ = arch_model
    model = load_model(folder, device="cpu")
    store = capture_activations(model, FORGET + RETAIN, [HOOK], progress=False)
    assert store[HOOK].shape[1] == D and bool(torch.isfinite(store[HOOK]).all())
    g = torch.Generator().manual_seed(0)
    pair = build_subspaces(torch.randn(256, D, generator=g), torch.arange(8), torch.arange(8, 24))
    before = {n: p.detach().clone() for n, p in model.hf_named_parameters().items()}
    result = SSPU(pair.relevant, pair.irrelevant, SSPUConfig(hook=HOOK, steps=4, lr=1e-2, guard_every=0)).apply(
        model, FORGET, RETAIN, progress=False
    )
    assert result.extra["update_norm"] > 0 and result.extra["out_of_subspace_residual"] < 1e-5
    changed = {n for n, p in model.hf_named_parameters().items() if not torch.equal(p, before[n])}
    assert changed == set(result.params)
    rmu = RMU(UnlearningConfig(hook=HOOK, steps=2, lr=1e-2, guard_every=0)).apply(model, FORGET, RETAIN, progress=False)
    assert rmu.params == result.params

    weights = block_weights(model)
    assert weights and not any("embed" in n or "wte" in n or "wpe" in n for n in weights)
    layouts = weight_layouts(model)
    snapshot = {n: p.detach().clone() for n, p in weights.items()}
    with quantized(model, 4):  # per output channel: each output row of a 4-bit matrix takes <= 16 values
        for n, p in weights.items():
            assert not torch.equal(p, snapshot[n])
            assert max(len(row.unique()) for row in as_out_in(p, layouts[n])) <= 16, n
    assert all(torch.equal(p, snapshot[n]) for n, p in weights.items())

    card = export_model(model, tmp_path / "export", {"method": "sspu", "architecture": arch})
    assert card["max_logit_diff"] <= 1e-4 and card["reload_weights_identical"]
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export").eval()
    ids = model.tokenize(FORGET).input_ids
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model.logits(ids), rtol=0, atol=1e-4)


def test_an_architecture_the_bridge_does_not_map_is_named(tmp_path):
    from transformers import BioGptConfig

    tok = AutoTokenizer.from_pretrained(zoo_model_path("secrets", progress=False))
    cfg = BioGptConfig(vocab_size=len(tok), hidden_size=D, num_hidden_layers=2, num_attention_heads=HEADS)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError, match=r"BioGptForCausalLM \(biogpt\) is not mapped by .*TransformerBridge"):
        load_model(tmp_path, device="cpu")


def test_generation_with_the_kv_cache_matches_generation_without(arch_model):
    """Every answer the toolkit scores is generated through the bridged model with a KV cache: a
    transformers/TransformerLens pair that drops the cache (transformers 5.24 renamed the attention
    layers' ``past_key_values`` argument, which TransformerLens 3's bridge still passes) decodes each
    step without its past and scores the zoo models' known facts as forgotten. Left-padded, as
    :func:`~sae_unlearn.evaluation.knowledge.greedy_answers` batches."""
    _, _, model = arch_model
    tok = model.tokenizer
    side, tok.padding_side = tok.padding_side, "left"
    try:
        enc = tok(["Q: Where does Pavel Thornbury live? A:", "Q: Who is Rosa? A:"], return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    steps = {}
    for use_cache in (True, False):
        out = model.hf_model.generate(  # type: ignore[operator]
            **enc,
            max_new_tokens=6,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=tok.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        steps[use_cache] = (out.sequences, torch.stack(out.logits))
    assert torch.equal(steps[True][0], steps[False][0])
    torch.testing.assert_close(steps[True][1], steps[False][1], rtol=0, atol=1e-4)
