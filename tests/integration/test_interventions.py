"""The weight-free SAE interventions (static, zero and conditional clamping, DSG) on the secrets
model: they change forget behaviour without touching a weight, run in every forward pass
(generation with and without a KV cache alike), export as base weights + SAE + rewrite that
``load_model`` re-installs, and are verified with the hook on (plus the hook removed)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from sae_unlearn.evaluation import answer_probability, evaluate_knowledge, greedy_answers
from sae_unlearn.export import export_model
from sae_unlearn.interventions import SAEIntervention, intervention_off
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import unlearn
from sae_unlearn.unlearning import METHODS
from sae_unlearn.utils import hash_state_dict
from sae_unlearn.verification import VerifyConfig, verification_data, verify

pytestmark = pytest.mark.integration

WEIGHT_FREE = ["clamp_static", "clamp_zero", "clamp_conditional", "dsg"]
#: zero-ablation is the control: it needs all 64 relevant latents to move the answers at all
SETTINGS = {"clamp_zero": {"n_latents": 64}}


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def original():
    return load_model(zoo_model_path("secrets"), device="cpu")


@pytest.fixture(scope="module")
def dsg_model(stage):
    data, st = stage
    model, result = unlearn("dsg", zoo_model_path("secrets"), data, st, device="cpu", progress=False)
    return model, result


def test_the_weight_free_methods_are_registered_as_such():
    from sae_unlearn.demo import DemoConfig

    for name in WEIGHT_FREE:
        assert METHODS[name].changes_weights is False
    assert METHODS["sspu"].changes_weights is True
    # the demo takes them beside the gradient methods: its step budget is not passed to them
    assert DemoConfig(methods=["rmu", "sspu", *WEIGHT_FREE], steps=7).methods[-1] == "dsg"


@pytest.mark.parametrize("method", WEIGHT_FREE)
def test_each_intervention_changes_forget_behaviour_and_no_weight(stage, original, method):
    data, st = stage
    forget, retain = data.split.forget, data.split.retain[:48]
    f0, r0 = _mean(answer_probability(original, forget)), _mean(answer_probability(original, retain))
    model, result = unlearn(method, zoo_model_path("secrets"), data, st, SETTINGS.get(method), device="cpu")
    assert result.extra["weight_free"] and result.history == [] and result.params == []
    assert model.intervention is not None and model.intervention.method == method
    assert hash_state_dict(model.hf_state_dict()) == hash_state_dict(original.hf_state_dict())
    forget_drop = f0 - _mean(answer_probability(model, forget))
    retain_drop = r0 - _mean(answer_probability(model, retain))
    assert forget_drop >= 0.005 and forget_drop >= 2 * max(retain_drop, 0.0), (method, forget_drop, retain_drop)
    # without the hook the model is the original again, bit for bit
    ids = model.tokenize([q.prompt for q in forget[:4]]).input_ids
    with intervention_off(model):
        assert torch.equal(model.logits(ids), original.logits(ids))
    assert not torch.equal(model.logits(ids), original.logits(ids))


def test_dsg_edits_only_flagged_prefixes_and_keeps_the_first_token(stage, dsg_model, original):
    model, result = dsg_model
    iv = model.intervention
    assert 0 <= result.extra["threshold"] < 1 and iv.info["forget_flagged"] > iv.info["retain_flagged"]
    data, _ = stage
    ids = model.tokenize(data.forget_texts[:8]).input_ids
    edited = model.logits(ids)
    plain = original.logits(ids)
    assert torch.equal(edited[:, 0], plain[:, 0])  # BOS is never rewritten
    assert not torch.equal(edited, plain)


def test_generation_with_the_kv_cache_matches_generation_without(stage, dsg_model):
    """The intervention carries its running counts across KV-cache steps and skips left padding, so
    cached and uncached greedy generation agree token for token on a left-padded batch (DSG: the
    rule whose edit depends on the whole prefix; the other rules share its bookkeeping)."""
    data, _ = stage
    model, _ = dsg_model
    prompts = [q.prompt for q in data.split.forget[:6]] + ["Q: Who", data.split.retain[0].prompt]
    tok = model.tokenizer
    old = tok.padding_side
    tok.padding_side = "left"
    try:
        enc = tok(prompts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = old
    kw = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": tok.pad_token_id}
    cached = model.hf_model.generate(**enc, use_cache=True, **kw)
    uncached = model.hf_model.generate(**enc, use_cache=False, **kw)
    assert torch.equal(cached, uncached)
    # and each prompt alone (no padding) gives the same continuation as inside the padded batch
    alone = greedy_answers(model, prompts[:3], max_new_tokens=8, batch_size=1)
    batched = greedy_answers(model, prompts[:3], max_new_tokens=8, batch_size=8)
    assert alone == batched


def test_export_keeps_the_base_weights_and_reloads_with_the_intervention(stage, dsg_model, original, tmp_path):
    model, result = dsg_model
    card = export_model(model, tmp_path / "dsg", {"method": "dsg", "hyperparameters": result.config})
    out = tmp_path / "dsg"
    assert card["requires_intervention"] and card["reload_weights_identical"] and card["max_logit_diff"] < 1e-4
    assert (out / "intervention" / "intervention.json").is_file() and (out / "intervention" / "sae").is_dir()
    assert "forgets only with its SAE intervention active" in (out / "UNLEARNING_CARD.md").read_text()
    reloaded = load_model(out, device="cpu")
    iv = reloaded.intervention
    assert iv is not None and (iv.rule, iv.latents, iv.threshold) == (
        "dsg",
        model.intervention.latents,
        result.extra["threshold"],
    )
    ids = model.tokenize([q.prompt for q in stage[0].split.forget[:4]]).input_ids
    assert torch.allclose(reloaded.logits(ids), model.logits(ids), atol=1e-5)
    # without it (load_model(..., intervention=False)) it is the original model, so plain transformers
    # refuses the folder unless it may run the shipped intervention (tests/integration/test_intervention_export.py)
    bare = load_model(out, device="cpu", intervention=False)
    assert bare.intervention is None and torch.equal(bare.logits(ids), original.logits(ids))
    assert hash_state_dict(bare.hf_state_dict()) == hash_state_dict(original.hf_state_dict())
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForCausalLM.from_pretrained(out, local_files_only=True)


def test_verify_runs_every_attack_with_the_hook_on_and_removes_it_as_one(dsg_model, secrets_oracle):
    model, _ = dsg_model
    config = VerifyConfig(
        attacks={
            "relearn": {"steps": (0, 2), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
            "probe": {"steps": 5},
            "quantization": {"bits": (8,)},
        },
        naturalness=None,
    )
    vdata = verification_data("secrets")
    report = verify(model, vdata, secrets_oracle, config, name="dsg")
    # the relearning attack starts from the model with the hook on (its held-out facts are partly
    # hidden), and the hook is still on afterwards
    on = evaluate_knowledge(model, vdata.relearn_eval).known_fraction
    with intervention_off(model):
        off = evaluate_knowledge(model, vdata.relearn_eval).known_fraction
    assert report.model.relearn["0"] == on < off
    assert report.model.unit.forget_accuracy < 1.0 and model.intervention is not None
    removed = next(c for c in report.checks if c.name == "intervention removed")
    assert removed.model == report.summary()["intervention_removed"] == 1.0 and removed.recovered
    assert report.verdict in ("suppressed", "not forgotten")  # never "removed": dropping the hook recovers all


def test_bad_interventions_fail_clearly_and_change_nothing(stage, original, no_runtime_typecheck):
    data, st = stage
    sae = st.fit.saes[st.selection.hook]
    with pytest.raises(ValueError, match="out of range or repeated"):
        SAEIntervention(st.selection.hook, sae, "clamp", [0, int(sae.cfg.d_sae)], [1.0, 1.0])
    with pytest.raises(ValueError, match="rule 'dsg' needs threshold"):
        SAEIntervention(st.selection.hook, sae, "dsg", [0], [1.0])
    with pytest.raises(ValueError, match="rule='clmp'"):
        SAEIntervention(st.selection.hook, sae, "clmp", [0], [1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown setting 'multiplyer'.*did you mean 'multiplier'"):
        unlearn("dsg", zoo_model_path("secrets"), data, st, {"multiplyer": 3}, device="cpu")
    with pytest.raises(ValueError, match="unknown setting 'steps'"):  # nothing to train: no steps
        unlearn("clamp_static", zoo_model_path("secrets"), data, st, {"steps": 3}, device="cpu")
    with pytest.raises(ValueError, match="ratio_percentile=101"):
        METHODS["dsg"].from_settings({"ratio_percentile": 101})
    model, _ = unlearn("clamp_static", zoo_model_path("secrets"), data, st, device="cpu", progress=False)
    again = METHODS["clamp_static"].from_stage(st, {"hook": st.selection.hook})
    with pytest.raises(ValueError, match="already has an SAE intervention"):
        again.apply(model, data.forget_texts, data.retain_texts, progress=False)
    assert model.intervention.method == "clamp_static"


def test_a_damaged_intervention_file_names_itself(stage, dsg_model, tmp_path):
    model, _ = dsg_model
    folder = model.intervention.save(tmp_path / "iv")
    spec = json.loads((folder / "intervention.json").read_text())
    del spec["latents"]
    (folder / "intervention.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"intervention.json lacks \['latents'\]"):
        SAEIntervention.load(folder)


def test_the_unlearning_widget_runs_a_weight_free_method(stage):
    from sae_unlearn.data.splits import UnlearningSplit
    from sae_unlearn.widgets import UnlearningMonitor

    data, st = stage
    small = UnlearningSplit("secrets (first 48 retain facts)", data.split.forget, data.split.retain[:48])
    monitor = UnlearningMonitor(zoo_model_path("secrets"), st, data.forget_texts, data.retain_texts, small)
    monitor.method.value = "dsg"
    monitor.run()
    assert [e["step"] for e in monitor.evals] == [0, 1] and monitor.history == []
    assert monitor.evals[1]["forget_accuracy"] < monitor.evals[0]["forget_accuracy"]
    assert "dsg done" in monitor.status.value
