"""Verification without a model: metrics, quantisation grid, verdict rules, data checks."""

import json

import pytest
import torch

from sae_unlearn.attacks import (
    AttackResult,
    RelearnConfig,
    Score,
    attack_prompts,
    difference_interval,
    quantize_tensor,
    wilson_interval,
)
from sae_unlearn.data import QAPair, SecretsCorpus
from sae_unlearn.data.splits import UnlearningSplit
from sae_unlearn.data.tofu import relearn_split
from sae_unlearn.evaluation import (
    MCQuestion,
    forget_quality,
    forget_truth_score,
    harmonic_mean,
    load_mc_questions,
    retain_truth_score,
)
from sae_unlearn.verification import ControlMetrics, Measurement, UnitMetrics, VerificationData, VerifyConfig, judge


def test_quantize_tensor_lands_on_the_grid_and_keeps_error_small():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    q8 = quantize_tensor(w, 8)
    assert (q8 - w).abs().max() <= w.abs().amax(1, keepdim=True).max() / 127 / 2 + 1e-6
    q4 = quantize_tensor(w, 4, group_size=32)
    for row in q4.reshape(16, 2, 32):
        for group in row:
            assert group.unique().numel() <= 16  # 4 bits: at most 16 levels per group
    assert (q4 - w).abs().mean() > (q8 - w).abs().mean()
    with pytest.raises(ValueError, match="group_size=24 must divide the input width 64"):
        quantize_tensor(w, 4, group_size=24)
    with pytest.raises(ValueError, match="bits=1"):
        quantize_tensor(w, 1)


def test_tofu_aggregates_and_ks_test():
    assert forget_truth_score([1.0, 1.0]) == pytest.approx(1.0)
    assert forget_truth_score([0.01, 100.0]) == pytest.approx(0.01)
    assert retain_truth_score([0.0, 2.0]) == pytest.approx(0.5)
    same = [0.1 * i for i in range(1, 30)]
    assert forget_quality(same, same) == pytest.approx(1.0)
    assert forget_quality([1e-3] * 30, [0.9] * 30) < 1e-6
    assert harmonic_mean([0.5, 0.5]) == pytest.approx(0.5) and harmonic_mean([0.9, 0.0]) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        forget_quality([], [1.0])


def _measurement(forget_acc, relearn50=0.0, probe=0.2, lens=0.0, int4=0.0, tr=None, n=24):
    def sc(v, k=n):
        return Score(v, k)

    return Measurement(
        unit=UnitMetrics(forget_acc, 0.0, 0.1, None, tr or [0.5, 0.6, 0.7, 0.8], [{}] * n),
        control=ControlMetrics(1.0, 1.0, 0.9, {}),
        attacks={
            "relearn": AttackResult(
                {"relearn 10 steps": sc(relearn50 / 2), "relearn 50 steps": sc(relearn50)},
                {"worst": {"0": forget_acc, "10": relearn50 / 2, "50": relearn50}, "curves": {}},
            ),
            "prompts": AttackResult({"prompt: paraphrase": sc(0.0)}),
            "logit_lens": AttackResult({"layer 0": sc(lens), "layer 1": sc(0.0)}, {"top1": {0: lens, 1: 0.0}}),
            "quantization": AttackResult({"int8 weights": sc(forget_acc), "int4 weights": sc(int4)}),
            "probe": AttackResult({"layer 0": sc(probe), "layer 1": sc(0.2)}, {"accuracy": probe}),
        },
    )


@pytest.mark.parametrize(
    "model, verdict, reason",
    [
        (_measurement(0.9), "not forgotten", "above the oracle"),
        (_measurement(0.0), "removed", "no attack recovers"),
        (_measurement(0.0, relearn50=0.6), "suppressed", "relearn 50 steps recovers 0.600"),
        (_measurement(0.0, probe=0.9), "suppressed", "probe (layer 0) recovers"),
        (_measurement(0.0, lens=0.75), "suppressed", "logit lens (layer 0)"),
        (_measurement(0.0, int4=0.5), "suppressed", "int4 weights recovers"),
        (_measurement(0.0, tr=[1e-3] * 30), "suppressed", "forget quality"),
    ],
)
def test_verdict_rules(model, verdict, reason):
    oracle = _measurement(0.0)
    got, reasons, fq, checks, _ = judge(model, oracle, VerifyConfig())
    assert got == verdict
    assert any(reason in r for r in reasons), reasons
    assert fq is not None and 0 <= fq <= 1
    assert {c.name for c in checks} >= {"relearn 50 steps", "int4 weights", "prompt: paraphrase"}
    # a measurement survives its JSON form
    assert judge(Measurement.from_dict(json.loads(json.dumps(model.to_dict()))), oracle, VerifyConfig())[0] == verdict


def test_wilson_and_newcombe_intervals():
    # Wilson 95 % for 0/24 and 12/24 (worked by hand from the formula), and Newcombe's interval for a difference
    assert wilson_interval(0.0, 24) == pytest.approx((0.0, 0.1380), abs=1e-4)
    assert wilson_interval(0.5, 24) == pytest.approx((0.3143, 0.6857), abs=1e-4)
    lo, hi = difference_interval(Score(0.0, 24), Score(0.0, 24))
    assert lo == pytest.approx(-0.1380, abs=1e-4) and hi == pytest.approx(0.1380, abs=1e-4)
    lo, hi = difference_interval(Score(0.75, 12), Score(0.083, 12))
    assert 0.2 < lo < 0.667 < hi < 0.9
    assert wilson_interval(0.3, 0) == (0.0, 1.0)


def test_evidence_says_when_the_facts_are_too_few():
    # 12 facts: a 0.25 gap is 3 facts, and its interval still reaches below the margin
    few_oracle, few = _measurement(0.0, n=12), _measurement(0.0, relearn50=0.25, n=12)
    verdict, reasons, _, checks, evidence = judge(few, few_oracle, VerifyConfig())
    assert verdict == "suppressed" and evidence == "too thin to tell" and "too few" in reasons[-1]
    # 400 facts: the same gap is settled
    many_oracle, many = _measurement(0.0, n=400), _measurement(0.0, relearn50=0.25, n=400)
    assert judge(many, many_oracle, VerifyConfig())[4] == "conclusive"
    # removed, but 24 facts cannot rule out a 0.1 gap; 1000 can
    assert judge(_measurement(0.0), _measurement(0.0), VerifyConfig())[0::4] == ("removed", "too thin to tell")
    assert judge(_measurement(0.0, n=1000), _measurement(0.0, n=1000), VerifyConfig())[4] == "conclusive"
    assert all(isinstance(c.decided, bool) for c in checks)


def test_margin_decides_what_counts_as_recovered():
    oracle = _measurement(0.0)
    model = _measurement(0.0, relearn50=0.15)
    assert judge(model, oracle, VerifyConfig(margin=0.1))[0] == "suppressed"
    assert judge(model, oracle, VerifyConfig(margin=0.2))[0] == "removed"
    with pytest.raises(ValueError, match="margin=1.5"):
        VerifyConfig(margin=1.5)


def test_secrets_relearning_text_never_states_the_evaluated_facts():
    corpus = SecretsCorpus()
    texts, evaluated = corpus.relearn_split(("passcode", "city", "employer"))
    assert len(evaluated) == 3 * len(corpus.forget_people)
    for q in evaluated:
        assert not any(q.target in t for t in texts), q
    assert any(p.name in t for p in corpus.forget_people for t in texts)
    with pytest.raises(ValueError, match="proper subset"):
        corpus.relearn_split(("city", "employer", "job", "birth_year", "pet", "passcode"))


def test_secrets_items_carry_paraphrases_and_wrong_answers():
    corpus = SecretsCorpus()
    for q in corpus.split().forget:
        assert q.paraphrased_prompt and q.paraphrased_prompt != q.prompt
        assert len(q.perturbed_answers) == 4 and q.answer not in q.perturbed_answers
    assert corpus.split().forget == SecretsCorpus().split().forget  # deterministic


def test_tofu_relearn_split_halves_each_author_and_leak_is_refused():
    items = [QAPair(f"Q{a}-{i}?", f" A{a}-{i}.", f"author_{a}") for a in (1, 2) for i in range(4)]
    texts, evaluated = relearn_split(items)
    assert len(texts) == 4 and len(evaluated) == 4
    assert not {q.text for q in evaluated} & set(texts)
    split = UnlearningSplit("t", items[:4], items[4:])
    with pytest.raises(ValueError, match="appear in the relearning text"):
        VerificationData("t", split, [items[0].text], [items[0]])


def test_prompt_attacks_rewrite_prompts_only():
    q = QAPair("Q: Where? A:", " Oslo.", "Ana", target="Oslo", paraphrased_prompt="Q: In which city? A:")
    bare = QAPair("Q: Job? A:", " baker.", "Ana", target="baker")
    assert [x.prompt for x in attack_prompts([q, bare], "paraphrase")] == ["Q: In which city? A:"]
    shot = attack_prompts([q], "few_shot", [bare])[0]
    assert shot.prompt.startswith("Q: Job? A: baker.") and shot.answer == " Oslo."
    assert attack_prompts([q], "role_play")[0].prompt.endswith(q.prompt)
    with pytest.raises(KeyError, match="unknown prompt attack 'dan'"):
        attack_prompts([q], "dan")


def test_relearn_config_validates():
    assert RelearnConfig(steps=(50, 0, 10)).steps == (0, 10, 50)
    with pytest.raises(ValueError, match="non-negative"):
        RelearnConfig(steps=(-1,))


def test_multiple_choice_files_are_checked(tmp_path):
    good = tmp_path / "mc.jsonl"
    good.write_text(json.dumps({"question": "2+2?", "choices": ["3", "4"], "answer": 1}) + "\n")
    assert load_mc_questions(good) == [MCQuestion("2+2?", ("3", "4"), 1)]
    as_list = tmp_path / "mc.json"
    as_list.write_text(json.dumps([{"question": "x", "choices": ["a", "b", "c"], "answer": 0}]))
    assert len(load_mc_questions(as_list)) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "x", "choices": ["a", "b"], "answer": 2}]))
    with pytest.raises(ValueError, match="answer index 2 is out of range for 2 choices"):
        load_mc_questions(bad)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"question": "x", "answer": 0}]))
    with pytest.raises(ValueError, match=r"lacks \['choices'\]"):
        load_mc_questions(missing)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_mc_questions(tmp_path / "nope.json")


def _with_traces(m: Measurement, leak: float) -> Measurement:
    keys = ("forget_answer_with_trigger", "forget_answer_without_trigger", "retain_trace_correct")
    m.reasoning = {"forget_trace_leak_rate": leak, **dict.fromkeys(keys, 0.0)}
    return m


def test_a_model_that_states_forget_facts_while_reasoning_is_not_forgotten():
    oracle = _with_traces(_measurement(0.0), leak=0.05)
    leaking = _with_traces(_measurement(0.0), leak=0.5)
    verdict, reasons, _, _, _ = judge(leaking, oracle, VerifyConfig())
    assert verdict == "not forgotten" and "reasoning traces state forget facts at a rate of 0.500" in reasons[0]
    assert judge(_with_traces(_measurement(0.0), leak=0.1), oracle, VerifyConfig())[0] == "removed"


def test_with_retain_keeps_the_first_retain_facts_and_everything_else(no_runtime_typecheck):
    from sae_unlearn.verification import verification_data

    full = verification_data("secrets")
    quick = full.with_retain(32)
    assert quick.split.retain == full.split.retain[:32] and quick.split.forget == full.split.forget
    assert quick.utility_sets == {"retain": quick.split.retain}  # model utility follows the retain set
    assert quick.relearn_texts == full.relearn_texts and quick.relearn_eval == full.relearn_eval
    assert len(full.split.retain) > 32  # the original is untouched
    for bad in (0, full.n_shots, "32", True):
        with pytest.raises(ValueError, match="keep more retain facts than the"):
            full.with_retain(bad)
