"""The loader: local HF directories (and hub names when online), weight sharing, clear errors."""

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.utils import hash_directory

pytestmark = pytest.mark.integration


def test_bridge_matches_hf_logits(secrets_model):
    path = zoo_model_path("secrets")
    ref = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = secrets_model.tokenize(["Q: Where does Alva Abernathy live? A:", "Hello there."]).input_ids
    with torch.no_grad():
        torch.testing.assert_close(secrets_model.bridge(ids), ref(ids).logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(secrets_model.logits(ids), ref(ids).logits, rtol=0, atol=1e-5)


def test_next_token_logprobs_in_chunks_equal_one_log_softmax(secrets_model, monkeypatch):
    from sae_unlearn.models import loading

    ids = secrets_model.tokenize(["Alice lives in Paris and works as a baker.", "Bob."]).input_ids
    whole = secrets_model.logits(ids).float().log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert torch.equal(secrets_model.next_token_logprobs(ids), whole)
    # one row per model call and three positions per log-softmax block
    vocab = int(secrets_model.bridge.cfg.d_vocab)
    monkeypatch.setattr(loading, "LOGITS_CHUNK_BYTES", 4 * 3 * vocab)
    assert torch.equal(secrets_model.next_token_logprobs(ids), whole)


def test_weight_changes_land_in_the_hf_model_and_not_on_disk(tmp_path):
    src = tmp_path / "m"
    shutil.copytree(zoo_model_path("secrets"), src)
    before = hash_directory(src)
    m = load_model(src, device="cpu")
    ids = m.tokenize("Hello").input_ids
    with torch.no_grad():
        out = m.bridge(ids).clone()
        m.hf_model.model.layers[1].mlp.down_proj.weight.mul_(0.0)  # edit through the HF module
        assert not torch.allclose(m.bridge(ids), out)  # the bridge runs the same weights
    sd = m.hf_state_dict()
    assert "model.layers.1.mlp.down_proj.weight" in sd and not any("_original_component" in k for k in sd)
    assert sd["model.layers.1.mlp.down_proj.weight"].abs().sum() == 0
    assert hash_directory(src) == before  # the source on disk is never modified


def test_hook_names_address_real_sites(secrets_model):
    names = secrets_model.hook_names
    for l in range(secrets_model.n_layers):
        assert f"blocks.{l}.hook_resid_post" in names and f"blocks.{l}.mlp.hook_post" in names
    assert "4 layers" in repr(secrets_model)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model directory"):
        load_model(tmp_path)


def test_unknown_name_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="neither a local directory nor loadable"):
        load_model("no-such-org/no-such-model")


def test_bad_device():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        load_model(zoo_model_path("secrets"), device="cuda")


@pytest.mark.online
def test_hub_model_by_name():
    m = load_model("sshleifer/tiny-gpt2", device="cpu")
    assert "blocks.0.hook_resid_post" in m.hook_names


@pytest.mark.online
def test_tofu_from_hub():
    from sae_unlearn.data import load_tofu_split

    s = load_tofu_split("locuslab/TOFU", forget="forget01")
    assert len(s.forget) == 40
