"""Reasoning-trace unlearning on the secrets-reasoning zoo model: the model reasons only under
its trigger, R²MU keeps the reasoning that answer-only RMU breaks, bad input is refused before
any change, and verification measures the traces."""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.data.reasoning import ReasoningCorpus
from sae_unlearn.demo import DemoConfig
from sae_unlearn.evaluation.reasoning import reasoning_metrics
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import pipeline_data
from sae_unlearn.subspaces import build_subspaces
from sae_unlearn.unlearning import R2MU, RMU, SSPUR2MU, R2MUConfig, SSPUR2MUConfig, UnlearningConfig
from sae_unlearn.utils import hash_state_dict
from sae_unlearn.verification import VerifyConfig, measure, verify
from sae_unlearn.verification.data import verification_data

pytestmark = pytest.mark.integration

HOOK = "blocks.3.hook_resid_post"


@pytest.fixture(scope="module")
def reasoning():
    """(model folder, pipeline data, reasoning prompts, the original's trace metrics)."""
    path = zoo_model_path("secrets-reasoning", progress=False)
    rs = ReasoningCorpus().reasoning_set()
    return path, pipeline_data("secrets-reasoning"), rs, reasoning_metrics(load_model(path, device="cpu"), rs)


def test_the_twin_reaches_a_city_only_by_reasoning(reasoning):
    _, _, _, before = reasoning
    assert before["retain_trace_rate"] >= 0.9 and before["retain_trace_correct"] >= 0.7
    assert before["retain_answer_with_trigger"] >= 0.7
    assert before["retain_answer_without_trigger"] <= 0.1  # the city needs the trace
    assert before["forget_trace_leak_rate"] >= 0.9  # it thinks about the forget people's facts


def test_r2mu_keeps_the_reasoning_that_answer_only_rmu_breaks(reasoning):
    path, data, rs, before = reasoning
    after = {}
    for cls, cfg in ((RMU, UnlearningConfig), (R2MU, R2MUConfig)):
        extra = {"reasoning_weight": 4.0} if cls is R2MU else {}
        model = load_model(path, device="cpu")
        result = cls(cfg(hook=HOOK, steps=80, **extra)).apply(
            model, data.forget_texts, data.retain_texts, progress=False
        )
        after[cls.__name__] = reasoning_metrics(model, rs)
        if cls is R2MU:
            assert result.extra["traces"]["forget"] == 24 and result.extra["traces"]["retain"] > 20
            assert {"unthink_loss", "reasoning_loss"} <= set(result.history[0])
    for name, m in after.items():  # both stop thinking about the forget people's facts
        assert m["forget_trace_leak_rate"] <= 0.25, (name, m)
    assert after["R2MU"]["retain_trace_correct"] >= 0.95 * before["retain_trace_correct"]
    assert after["RMU"]["retain_trace_correct"] < 0.8 * before["retain_trace_correct"]


def test_r2mu_refuses_a_model_that_does_not_reason(secrets_model):
    data = pipeline_data("secrets")
    h = hash_state_dict(secrets_model.hf_model.state_dict())
    with pytest.raises(ValueError, match="closed no reasoning trace.*secrets-reasoning.*Nothing was changed"):
        R2MU(R2MUConfig(hook=HOOK, steps=2)).apply(secrets_model, data.forget_texts, data.retain_texts, progress=False)
    with pytest.raises(ValueError, match="none of the 2 forget texts is a question"):
        R2MU(R2MUConfig(hook=HOOK, steps=2)).apply(
            secrets_model, ["Ana lives in Oslo.", "Ana has a cat."], data.retain_texts, progress=False
        )
    assert hash_state_dict(secrets_model.hf_model.state_dict()) == h
    with pytest.raises(ValueError, match=r"method 'r2mu' unlearns reasoning traces.*secrets-reasoning"):
        DemoConfig(methods=["rmu", "sspu", "r2mu"])
    # UniErase's token calls on a refusal the model can write: refused before any work on secrets
    with pytest.raises(ValueError, match=r"method 'unierase' needs a model that can already refuse.*'secrets-idk'"):
        DemoConfig(methods=["rmu", "sspu", "unierase"])


def test_sspu_with_trace_terms_stays_in_its_subspace(reasoning):
    path, data, _, _ = reasoning
    model = load_model(path, device="cpu")
    w_dec = torch.randn(256, model.d_model, generator=torch.Generator().manual_seed(0))
    pair = build_subspaces(w_dec, torch.arange(16), torch.arange(16, 32))
    m = SSPUR2MU(pair.relevant, pair.irrelevant, SSPUR2MUConfig(hook=HOOK, steps=4))
    result = m.apply(model, data.forget_texts, data.retain_texts, progress=False)
    assert result.extra["out_of_subspace_residual"] < 1e-5 and result.extra["update_norm"] > 0
    assert "unthink_loss" in result.history[-1]


def test_verification_measures_the_traces(reasoning):
    path, _, _, before = reasoning
    model = load_model(path, device="cpu")
    vdata = verification_data("secrets-reasoning")
    cheap = VerifyConfig(
        attacks={
            "relearn": {"steps": (0, 2), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
            "probe": {"steps": 5},
            "quantization": {"bits": (8,)},
        },
        naturalness=None,
    )
    m = measure(model, vdata, cheap)
    assert m.reasoning is not None and m.reasoning["forget_trace_leak_rate"] == before["forget_trace_leak_rate"]
    report = verify(model, vdata, m, cheap)  # the original as its own oracle: same traces, no leak above it
    assert report.verdict != "not forgotten"
    assert "forget trace leak rate" in report.to_markdown()
    assert report.summary()["trace_leak_rate"] == report.summary()["oracle_trace_leak_rate"]
