"""Verification on the secrets model: every attack leaves the model as it was, the original is
"not forgotten", the oracle judged against itself is "removed", and an RMU model is caught."""

import json

import pytest

from sae_unlearn.__main__ import main
from sae_unlearn.attacks import RelearnConfig, logit_lens, quantized, relearn_sweep, truth_probe
from sae_unlearn.attacks.probe import ProbeConfig
from sae_unlearn.evaluation import (
    MCQuestion,
    answer_logprobs,
    evaluate_knowledge,
    multiple_choice_accuracy,
    truth_ratios,
)
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.unlearning import RMU, UnlearningConfig
from sae_unlearn.utils import hash_state_dict
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

pytestmark = pytest.mark.integration
# one relearning run per step count and a short probe; the grid itself is tested on its own below
FAST = VerifyConfig(
    attacks={"relearn": {"steps": (0, 10), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)}, "probe": {"steps": 100}}
)


@pytest.fixture(scope="module")
def vdata():
    return verification_data("secrets")


@pytest.fixture(scope="module")
def oracle_measure(secrets_oracle, vdata):
    return measure(secrets_oracle, vdata, FAST)


def test_truth_ratio_and_probe_separate_knowing_from_never_knowing(secrets_model, secrets_oracle, vdata):
    forget = vdata.split.forget
    known, unknown = truth_ratios(secrets_model, forget), truth_ratios(secrets_oracle, forget)
    assert sum(known) / len(known) < 0.1 < sum(unknown) / len(unknown)
    retain = vdata.split.retain[::4]
    p_model = truth_probe(secrets_model, retain, forget, ProbeConfig(steps=100))
    p_oracle = truth_probe(secrets_oracle, retain, forget, ProbeConfig(steps=100))
    # the probe trains its map only: the model's weights keep their flags and get no gradient
    params = list(secrets_model.hf_model.parameters())
    assert all(p.grad is None for p in params) and all(p.requires_grad for p in params)
    assert p_model.accuracy >= 0.9 and p_oracle.accuracy <= 0.5 and p_model.chance == pytest.approx(0.2)
    assert logit_lens(secrets_model, forget).max_top1 >= 0.9 and logit_lens(secrets_oracle, forget).max_top1 <= 0.2


def test_attacks_restore_weights_and_are_deterministic(secrets_model, vdata):
    before = hash_state_dict(secrets_model.hf_state_dict())

    def acc(m):
        return evaluate_knowledge(m, vdata.relearn_eval).known_fraction

    first = relearn_sweep(secrets_model, vdata.relearn_texts, acc)
    assert hash_state_dict(secrets_model.hf_state_dict()) == before
    assert relearn_sweep(secrets_model, vdata.relearn_texts, acc) == first
    with quantized(secrets_model, 4, group_size=32):
        assert hash_state_dict(secrets_model.hf_state_dict()) != before
    assert hash_state_dict(secrets_model.hf_state_dict()) == before
    with pytest.raises(ValueError, match="group_size=48 does not divide"):
        with quantized(secrets_model, 4, group_size=48):
            pass


def test_original_is_not_forgotten_and_oracle_is_removed(
    secrets_model, secrets_oracle, vdata, oracle_measure, tmp_path
):
    before = hash_state_dict(secrets_model.hf_state_dict())
    report = verify(secrets_model, vdata, oracle_measure, FAST, name="original")
    assert hash_state_dict(secrets_model.hf_state_dict()) == before
    assert report.verdict == "not forgotten" and report.forget_quality < 0.05
    assert report.model.control.model_utility > 0.9
    same = verify(secrets_oracle, vdata, oracle_measure, FAST, name="oracle")
    assert same.verdict == "removed" and same.forget_quality == pytest.approx(1.0)
    # a measurement can stand in for the model: measuring is deterministic, so the checks are the same
    assert verify(oracle_measure, vdata, oracle_measure, FAST).checks == same.checks
    path = report.save(tmp_path)
    saved = json.loads(path.read_text())
    assert saved["verdict"] == "not forgotten" and saved["summary"]["relearn"]["10"] == report.relearn_forget_accuracy
    assert (tmp_path / "verification_relearn.png").stat().st_size > 1000
    assert "| reconstruction | relearn 10 steps |" in (tmp_path / "verification.md").read_text()


def test_rmu_output_forgetting_is_caught_as_suppressed(vdata, oracle_measure, secrets_corpus, secrets_model):
    model = load_model(zoo_model_path("secrets"), device="cpu")
    cfg = UnlearningConfig(hook="blocks.3.hook_resid_post", steps=150, lr=5e-3, batch_size=16, alpha=10.0)
    RMU(cfg).apply(model, secrets_corpus.forget_texts(), secrets_corpus.retain_texts(), progress=False)
    report = verify(model, vdata, oracle_measure, FAST, name="rmu", reference=secrets_model)
    assert report.model.unit.forget_accuracy <= 0.1
    # RMU edits layers 1-3 only; the answer stays readable from layer 0 (logit lens), so it is not removed.
    assert report.verdict == "suppressed"
    assert any(c.recovered for c in report.checks)
    # Łucki et al.: projecting out the direction RMU added (vs the original) at its layer brings answers back
    ablation = report.model.attacks["direction_ablation"]
    assert ablation.details["direction_from"] == "difference to the original model"
    assert (
        ablation.scores["layer 3"].value >= 0.2 >= oracle_measure.attacks["direction_ablation"].scores["layer 3"].value
    )
    # it babbles where the oracle answers: degenerate answers, and a distinguisher tells them apart
    s = report.summary()
    assert s["degenerate_share"] >= 0.5 > s["oracle_degenerate_share"] and s["distinguisher_accuracy"] >= 0.8


def test_lora_relearning_trains_adapters_only_and_puts_the_model_back(secrets_oracle, vdata):
    before = hash_state_dict(secrets_oracle.hf_state_dict())
    modules = [type(m).__name__ for m in secrets_oracle.hf_model.modules()]
    ids = secrets_oracle.tokenize([q.prompt for q in vdata.relearn_eval[:4]]).input_ids
    base = secrets_oracle.logits(ids)

    def moved(m):  # how far the logits have moved: the adapter is live in the bridge's forward pass
        return float((m.logits(ids) - base).abs().max())

    cfg = RelearnConfig(steps=(0, 5), lr=1e-2, mode="lora", lora_rank=4)
    curve = relearn_sweep(secrets_oracle, vdata.relearn_texts, moved, cfg)
    assert curve[0] == 0.0 < curve[5]
    assert relearn_sweep(secrets_oracle, vdata.relearn_texts, moved, cfg) == curve  # seeded: same adapter, same batches
    assert hash_state_dict(secrets_oracle.hf_state_dict()) == before
    assert [type(m).__name__ for m in secrets_oracle.hf_model.modules()] == modules  # adapters gone
    assert not hasattr(secrets_oracle.hf_model, "peft_config")  # and peft's bookkeeping with them
    with pytest.raises(ValueError, match=r"lora_rank=512 is larger than the narrowest adapted layer's width"):
        relearn_sweep(secrets_oracle, vdata.relearn_texts, moved, RelearnConfig(mode="lora", lora_rank=512))


def test_the_relearning_grid_reports_its_worst_run_and_keeps_every_curve(secrets_oracle, vdata):
    from sae_unlearn.attacks import AttackContext, RelearnAttackConfig
    from sae_unlearn.attacks.relearn import RelearnAttack

    cfg = RelearnAttackConfig(steps=(0, 3), lrs=(1e-3, 3e-2), seeds=(0,), modes=("full", "lora"), lora_rank=4)
    result = RelearnAttack(cfg).run(secrets_oracle, vdata, AttackContext())
    curves = result.details["curves"]
    assert sorted(curves) == sorted(f"{m} lr={lr:g} seed=0" for m in ("full", "lora") for lr in (1e-3, 3e-2))
    worst = max(c["3"] for c in curves.values())
    assert result.scores["relearn 3 steps"].value == worst == curves[result.details["worst_run"]["3"]]["3"]
    assert result.scores["relearn 3 steps"].n == len(vdata.relearn_eval) and "0" in result.details["worst"]
    assert RelearnAttack(cfg).run(secrets_oracle, vdata, AttackContext()).details == result.details  # seeded


def test_an_attack_that_cannot_run_fails_before_any_measuring(secrets_model, vdata):
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="lora_rank=4096 is larger"):
        verify(secrets_model, vdata, secrets_model, VerifyConfig(attacks={"relearn": {"lora_rank": 4096}}))
    assert time.perf_counter() - t0 < 2


def test_multiple_choice_scores_known_facts(secrets_model, secrets_oracle, vdata):
    # choice_text scores each choice as the continuation of the question in the trained Q/A format
    qs = [
        MCQuestion(q.prompt, (q.answer.strip(), *[a.strip() for a in q.perturbed_answers[:3]]), 0)
        for q in vdata.split.forget
    ]
    assert multiple_choice_accuracy(secrets_model, qs, scoring="choice_text") >= 0.9
    assert multiple_choice_accuracy(secrets_oracle, qs, scoring="choice_text") <= 0.6
    # letter scoring (lm-eval's WMDP/MMLU format) picks the letter most likely after the listed choices
    picks = []
    for q in qs:
        letters = [f" {chr(ord('A') + i)}" for i in range(len(q.choices))]
        lps = answer_logprobs(secrets_model, [q.letter_prompt()] * len(letters), letters)
        picks.append(max(range(len(lps)), key=lps.__getitem__) == q.answer)
    assert q.letter_prompt().endswith("\nAnswer:") and f"\nD. {q.choices[3]}" in q.letter_prompt()
    assert multiple_choice_accuracy(secrets_model, qs, scoring="letter") == pytest.approx(sum(picks) / len(qs))


def test_verify_command_infers_data_and_oracle(tmp_path, capsys):
    model_dir = zoo_model_path("secrets")
    out = tmp_path / "v"
    # one learning rate (the grid's other points are tested above) and no probe (tested above): the
    # inference of --data and --oracle is what this test is about
    argv = ["verify", str(model_dir), "--out", str(out), "--relearn-steps", "0", "5", "--relearn-lrs", "1e-3"]
    assert main([*argv, "--skip", "probe", "--no-progress"]) == 0
    saved = json.loads((out / "verification.json").read_text())
    assert saved["verdict"] == "not forgotten" and set(saved["summary"]["relearn"]) == {"0", "5"}
    assert saved["config"]["attacks"]["relearn"]["lrs"] == [1e-3] and "probe" not in saved["model"]["attacks"]
    assert "NOT FORGOTTEN" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["verify", str(tmp_path)])  # not a model folder
