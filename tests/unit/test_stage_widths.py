"""A method built from an SAE stage that does not fit the model, or whose latents are another SAE's,
fails in :func:`sae_unlearn.pipeline.load_method` naming the hook, both widths and the fix, before
any training step (it used to stop inside sae-lens on a raw size mismatch). No zoo model: a tiny
random Llama (d_model 32) and random SAEs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from sae_unlearn.pipeline import load_method
from sae_unlearn.saes.loading import SAEMismatchError
from sae_unlearn.subspaces import build_subspaces

HOOK = "blocks.3.hook_resid_post"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random 4-block Llama with d_model=32 and a word-level tokenizer, saved as a Hugging Face folder."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = tmp_path_factory.mktemp("tiny")
    vocab = {w: i for i, w in enumerate("<pad> <bos> <eos> <unk> the a of to and in is it".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=4
    )
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def _stage(d_in: int, d_sae: int, selected_on: int):
    """A stage whose SAEs are ``d_in`` → ``d_sae`` and whose latents were selected on a ``selected_on``-wide SAE."""
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    rel, irr = torch.arange(selected_on - 8, selected_on), torch.arange(8)
    latents = SimpleNamespace(relevant=rel, irrelevant=irr)
    saes = {f"blocks.{layer}.hook_resid_post": sae for layer in range(4)}
    return SimpleNamespace(
        fit=SimpleNamespace(saes=saes),
        selection=SimpleNamespace(hook=HOOK, layer=3, latents=latents, selections=dict.fromkeys(saes, latents)),
        subspaces=build_subspaces(torch.randn(selected_on, d_in), rel, irr),
        positions="all",
    )


@pytest.mark.parametrize("method", ["clamp_static", "dsg", "sspu", "sspu_layers"])
def test_a_stage_of_another_width_is_named_before_training(no_runtime_typecheck, model_dir, method):
    with pytest.raises(
        SAEMismatchError,
        match=r"SAE at 'blocks.0.hook_resid_post' reads d_in=64, but .* has "
        r"d_model=32 there: the stage was built on another model. Run sae_stage on this model",
    ):
        load_method(method, model_dir, _stage(64, 128, 128), {"steps": 1} if "sspu" in method else {})


@pytest.mark.parametrize("method", ["clamp_static", "sspu_layers"])
def test_latents_of_a_wider_sae_are_named_before_training(no_runtime_typecheck, model_dir, method):
    with pytest.raises(
        SAEMismatchError,
        match=r"latents at 'blocks.0.hook_resid_post' go up to 255, but its SAE "
        r"there has d_sae=64: they were selected on another, wider SAE",
    ):
        load_method(method, model_dir, _stage(32, 64, 256))
