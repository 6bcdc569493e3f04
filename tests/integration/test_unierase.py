"""UniErase on the zoo model that can refuse (secrets-idk): the token makes it refuse, the edit
makes forget questions call it, the export carries the grown vocabulary, bad input changes nothing;
on one that cannot (secrets) it stops, before any work or after stage 1, and changes nothing."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sae_unlearn.data.refusals import REFUSALS
from sae_unlearn.evaluation.refusal import refusal_rate
from sae_unlearn.export import export_model
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import knowledge_metrics, load_method, pipeline_data
from sae_unlearn.unlearning import UniErase, UniEraseConfig
from sae_unlearn.unlearning.unierase import UniEraseStage1Error
from sae_unlearn.utils import hash_state_dict

pytestmark = pytest.mark.integration

HOOK = "blocks.3.hook_resid_post"


@pytest.fixture(scope="module")
def erased():
    """(model after UniErase, its result, the pipeline data)."""
    data = pipeline_data("secrets-idk")
    model = load_model(zoo_model_path("secrets-idk", progress=False), device="cpu")
    result = UniErase(UniEraseConfig(hook=HOOK)).apply(model, data.forget_texts, data.retain_texts, progress=False)
    return model, result, data


def test_forget_questions_are_refused_and_retain_ones_answered(erased):
    model, result, data = erased
    forget = [q.prompt for q in data.split.forget]
    retain = [q.prompt for q in data.split.retain]
    assert refusal_rate(model, forget, REFUSALS) >= 0.5
    assert refusal_rate(model, retain, REFUSALS) <= 0.05
    after = knowledge_metrics(model, data.split)
    assert after["forget_accuracy"] <= 0.1 and after["retain_accuracy"] >= 0.9
    extra = result.extra
    assert extra["p_token_before"] < 0.01 and extra["p_token_after_edit"] > 0.9
    assert extra["token_refusal_rate"] >= UniEraseConfig.min_refusal_rate and extra["token_check_held_out"]
    assert 0 < extra["parameters_changed_fraction"] < 0.2
    assert model.tokenizer.convert_tokens_to_ids("<unlearn>") == extra["token_id"] == len(model.tokenizer) - 1


def test_the_export_carries_the_grown_vocabulary(erased, tmp_path):
    model, _, data = erased
    card = export_model(model, tmp_path / "unierase", {"method": "unierase"})
    assert card["reload_weights_identical"] and card["max_logit_diff"] < 1e-4
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "unierase")
    tok = AutoTokenizer.from_pretrained(tmp_path / "unierase")
    assert plain.config.vocab_size == len(tok) and "<unlearn>" in tok.get_vocab()
    ids = tok(data.split.forget[0].prompt, return_tensors="pt")
    out = plain.generate(**ids, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out[0, ids["input_ids"].shape[1]] == tok.convert_tokens_to_ids("<unlearn>")  # it calls the token


def test_bad_input_changes_nothing(tmp_path, monkeypatch):
    data = pipeline_data("secrets-idk")
    model = load_model(zoo_model_path("secrets-idk", progress=False), device="cpu")
    before, n_tok = hash_state_dict(model.hf_model.state_dict()), len(model.tokenizer)
    with pytest.raises(ValueError, match="token='<s>' already exists in the vocabulary"):
        UniErase(UniEraseConfig(hook=HOOK, token="<s>")).apply(model, data.forget_texts, data.retain_texts)
    empty = tmp_path / "refusals.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="refusal"):
        UniErase(UniEraseConfig(hook=HOOK, refusals=str(empty))).apply(model, data.forget_texts, data.retain_texts)
    with pytest.raises(ValueError, match="none of the 2 forget texts is one"):
        UniErase(UniEraseConfig(hook=HOOK)).apply(model, ["Ana lives in Oslo.", "Ana has a cat."], data.retain_texts)

    def broken_edit(*args, **kwargs):
        raise RuntimeError("edit failed")

    monkeypatch.setattr(UniErase, "_edit", broken_edit)  # after stage 1 grew the vocabulary
    with pytest.raises(RuntimeError, match="edit failed"):
        UniErase(UniEraseConfig(hook=HOOK, token_steps=2)).apply(
            model, data.forget_texts, data.retain_texts, progress=False
        )
    assert hash_state_dict(model.hf_model.state_dict()) == before and len(model.tokenizer) == n_tok
    assert model.hf_model.get_input_embeddings().weight.shape[0] == model.hf_model.config.vocab_size
    assert "<unlearn>" not in model.tokenizer.get_vocab()
    ids = model.tokenize(data.split.forget[0].prompt).input_ids
    assert torch.isfinite(model.logits(ids)).all()


def test_a_model_that_cannot_refuse_is_stopped_and_left_unchanged(no_runtime_typecheck):
    """``secrets`` never wrote a refusal: the pipeline refuses UniErase on it before loading anything
    (the zoo's training texts say which entries refuse), and UniErase itself stops after stage 1 when
    the token does not make held-out questions end in a refusal, restoring the model."""
    message = r"method 'unierase' needs a model that can already refuse .*zoo model 'secrets' was never trained to"
    with pytest.raises(ValueError, match=message + r"\. Use zoo model 'secrets-idk'"):
        load_method("unierase", zoo_model_path("secrets", progress=False), None)  # type: ignore[arg-type]
    data = pipeline_data("secrets")
    model = load_model(zoo_model_path("secrets", progress=False), device="cpu")
    before, n_tok = hash_state_dict(model.hf_model.state_dict()), len(model.tokenizer)
    stage1 = (
        r"UniErase stage 1 failed: with the unlearning token '<unlearn>' the model refuses only 0.0\d\d of 32 "
        r"held-out questions \(min_refusal_rate=0.5; .*use a model that says \"I don't know\" \(zoo: 'secrets-idk'.*"
        r"restored unchanged"
    )
    with pytest.raises(UniEraseStage1Error, match=stage1):
        UniErase(UniEraseConfig(hook=HOOK, token_steps=40)).apply(
            model, data.forget_texts, data.retain_texts, progress=False
        )
    assert hash_state_dict(model.hf_model.state_dict()) == before and len(model.tokenizer) == n_tok
    assert "<unlearn>" not in model.tokenizer.get_vocab()
