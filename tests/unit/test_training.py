"""Tokenizer and LM training on a toy corpus (a 2-layer, d_model 32 model: seconds)."""

import pytest
import torch
from transformers import LlamaForCausalLM

from sae_unlearn.models.tokenizer import train_bpe_tokenizer
from sae_unlearn.models.training import LMTrainConfig, tokenize_examples, train_causal_lm
from sae_unlearn.models.zoo import ZooArchitecture
from sae_unlearn.utils import hash_state_dict, seeded

TEXTS = [f"Q: What is the code of person {i}? A: {1000 + 37 * i}." for i in range(12)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS, vocab_size=300)


def make_model(tok):
    with seeded(0):
        return LlamaForCausalLM(ZooArchitecture(d_model=32, n_layers=2, n_heads=2, d_mlp=64).hf_config(len(tok)))


def test_tokenizer_is_deterministic_and_adds_bos(tokenizer):
    again = train_bpe_tokenizer(TEXTS, vocab_size=300)
    assert tokenizer.get_vocab() == again.get_vocab()
    ids = tokenizer(TEXTS[0])["input_ids"]
    assert ids[0] == tokenizer.bos_token_id == 1 and tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == TEXTS[0]
    with pytest.raises(ValueError, match="vocab_size=100"):
        train_bpe_tokenizer(TEXTS, vocab_size=100)


def test_prompt_loss_weight_masks_prefix(tokenizer):
    data = tokenize_examples(tokenizer, [("Q: x? A:", " 12.")], prompt_loss_weight=0.0)
    w = data.loss_weight[0]
    n_prefix = len(tokenizer("Q: x? A:")["input_ids"])
    assert w[:n_prefix].sum() == 0 and (w[n_prefix:] == 1).all()


def test_training_learns_and_is_deterministic(tokenizer):
    cfg = LMTrainConfig(epochs=8, batch_size=4, lr=1e-2, warmup_steps=2)
    runs = []
    for _ in range(2):
        m = make_model(tokenizer)
        losses = train_causal_lm(m, tokenizer, [("", t) for t in TEXTS], cfg, progress=False)
        runs.append((hash_state_dict(m.state_dict()), losses))
    assert runs[0][0] == runs[1][0]  # same seed, same weights
    assert runs[0][1][-1] < 0.5 * runs[0][1][0]


def test_interrupted_training_resumes_to_the_same_weights(tokenizer, tmp_path):
    cfg = LMTrainConfig(epochs=4, batch_size=4, lr=1e-2, warmup_steps=2)
    examples = [("", t) for t in TEXTS]
    ref = make_model(tokenizer)
    train_causal_lm(ref, tokenizer, examples, cfg, progress=False)

    class Interrupt(Exception):
        pass

    def stop_after_epoch_1(epoch, loss):
        if epoch == 1:
            raise Interrupt

    m = make_model(tokenizer)
    with pytest.raises(Interrupt):
        train_causal_lm(
            m, tokenizer, examples, cfg, checkpoint_dir=tmp_path, progress=False, on_epoch_end=stop_after_epoch_1
        )
    # the checkpoint of epoch 0 is there; a fresh model resumes from it
    resumed = make_model(tokenizer)
    losses = train_causal_lm(resumed, tokenizer, examples, cfg, checkpoint_dir=tmp_path, progress=False)
    assert len(losses) == 4
    assert hash_state_dict(resumed.state_dict()) == hash_state_dict(ref.state_dict())
    other = LMTrainConfig(epochs=5, batch_size=4, lr=1e-2, warmup_steps=2)
    with pytest.raises(ValueError, match="different run"):
        train_causal_lm(make_model(tokenizer), tokenizer, examples, other, checkpoint_dir=tmp_path, progress=False)


def test_bad_train_config():
    with pytest.raises(ValueError, match="epochs=0"):
        LMTrainConfig(epochs=0)
    with pytest.raises(ValueError, match="prompt_loss_weight=2.0"):
        LMTrainConfig(prompt_loss_weight=2.0)
    with pytest.raises(ValueError, match="no training examples"):
        tokenize_examples(train_bpe_tokenizer(TEXTS, 300), [])


def test_non_finite_loss_stops_with_message(tokenizer):
    m = make_model(tokenizer)
    with torch.no_grad():
        m.lm_head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        train_causal_lm(m, tokenizer, [("", t) for t in TEXTS], LMTrainConfig(epochs=1), progress=False)
