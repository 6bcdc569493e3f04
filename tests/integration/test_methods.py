"""Every registered unlearning method on the secrets model through the one trainer, and a method
plugged in from a test file (not the package) running through the pipeline and the monitor."""

from __future__ import annotations

import pytest
import torch

from sae_unlearn.evaluation import answer_probability
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import unlearn
from sae_unlearn.subspaces import build_subspaces
from sae_unlearn.unlearning import METHODS, GradientMethod, TrainConfig, method_runs_on
from sae_unlearn.unlearning.gradient import mean_token_nll
from sae_unlearn.unlearning.trainer import TrainRun
from tests.toy_method import toy_method_registered

pytestmark = pytest.mark.integration

#: Gradient methods with a test of their own instead of the few-step one below (what sets them apart).
OWN_TEST = {
    "tar": "adversarial inner relearning steps: test_tar_and_sam_add_their_terms_and_cost_more",
    "sspu_tar": "adversarial inner relearning steps: test_tar_and_sam_add_their_terms_and_cost_more",
    "sam_rmu": "a sharpness-aware second pass per step: test_tar_and_sam_add_their_terms_and_cost_more",
    "sspu_sam": "a sharpness-aware second pass per step: test_tar_and_sam_add_their_terms_and_cost_more",
    "sspu_layers": "one subspace per layer: test_sspu_across_layers_edits_each_layer_inside_its_own_subspace",
}
#: Every registered gradient method that runs on the secrets model (from the registry: a new method
#: is tested here by registering it), but those with a test of their own.
BUILT_IN = [
    m for m in METHODS if issubclass(METHODS[m], GradientMethod) and method_runs_on(m, "secrets") and m not in OWN_TEST
]


#: Learning rates that move each method within the test's 12 steps (the output-level losses start
#: flat on facts the model knows with p ~ 1, so their defaults, chosen for the 250-step budget, barely
#: move in 12); RMU and SSPU run at their defaults.
FEW_STEP_LR = {"grad_ascent": 5e-3, "grad_diff": 5e-3, "npo": 5e-3, "simnpo": 3e-2, "idk_dpo": 2e-3}


def _answer_prob(model, items) -> float:
    probs = answer_probability(model, items)
    return sum(probs) / len(probs)


@pytest.mark.parametrize("method", BUILT_IN)
def test_each_method_changes_forget_behaviour_in_a_few_steps(stage, method):
    """12 steps lower the probability of the forget answers, more than the retain answers' (and only
    the default matrices change)."""
    data, st = stage
    src = zoo_model_path("secrets")
    original = load_model(src, device="cpu")
    forget, retain = data.split.forget, data.split.retain[:48]
    f0, r0 = _answer_prob(original, forget), _answer_prob(original, retain)
    settings = {"steps": 12, "guard_every": 0} | ({"lr": FEW_STEP_LR[method]} if method in FEW_STEP_LR else {})
    model, result = unlearn(method, src, data, st, settings, device="cpu", progress=False)
    assert result.method == method and len(result.history) == 12 and result.mean_step_seconds > 0
    forget_drop, retain_drop = f0 - _answer_prob(model, forget), r0 - _answer_prob(model, retain)
    assert forget_drop >= 0.03 and forget_drop >= 1.5 * retain_drop, (method, forget_drop, retain_drop)
    old = original.hf_named_parameters()
    changed = {n for n, p in model.hf_named_parameters().items() if not torch.equal(p, old[n])}
    assert changed == set(result.params) and len(changed) == 3
    assert result.extra["token_passes"] > 0  # compute counted for every gradient method


def test_tar_and_sam_add_their_terms_and_cost_more(stage):
    data, st = stage
    src = zoo_model_path("secrets")
    base = {"steps": 6, "guard_every": 0}
    _, rmu = unlearn("rmu", src, data, st, base, device="cpu", progress=False)
    _, tar = unlearn("tar", src, data, st, base | {"tar_every": 1}, device="cpu", progress=False)
    _, sam = unlearn("sam_rmu", src, data, st, base, device="cpu", progress=False)
    assert all("adversarial_loss" in row for row in tar.history)
    assert all(row["sharp_forget_loss"] >= 0 for row in sam.history)
    # each TAR step adds 4 inner relearning passes and one outer pass; SAM one more forget pass
    assert tar.extra["token_passes"] > 2 * rmu.extra["token_passes"] > 0
    assert rmu.extra["token_passes"] < sam.extra["token_passes"] < tar.extra["token_passes"]
    _, sspu_tar = unlearn("sspu_tar", src, data, st, base, device="cpu", progress=False)
    assert sspu_tar.extra["out_of_subspace_residual"] < 1e-5  # the adversary's gradient is projected too
    _, sspu_sam = unlearn("sspu_sam", src, data, st, base, device="cpu", progress=False)
    assert all(row["sharp_forget_loss"] >= 0 for row in sspu_sam.history)
    assert sspu_sam.extra["out_of_subspace_residual"] < 1e-5  # the sharpness step's update is projected too


def test_every_method_the_few_step_test_leaves_out_is_registered():
    """A stale OWN_TEST entry must not hide a method from the few-step test."""
    assert set(OWN_TEST) <= set(METHODS), set(OWN_TEST) - set(METHODS)
    assert not set(OWN_TEST) & set(BUILT_IN)


def test_sspu_across_layers_edits_each_layer_inside_its_own_subspace(stage):
    """One MLP output matrix per steered layer, each change inside *its* layer's relevant subspace
    (not another layer's), and forgetting in a few steps."""
    from sae_unlearn.models.weights import as_out_in, weight_layouts
    from sae_unlearn.unlearning import out_of_subspace_residual

    data, st = stage
    src = zoo_model_path("secrets")
    original = load_model(src, device="cpu")
    forget = data.split.forget
    model, result = unlearn("sspu_layers", src, data, st, {"steps": 12, "guard_every": 0}, device="cpu", progress=False)
    hooks = result.extra["hooks"]
    assert result.extra["layers"] == [0, 1, 2, 3] and hooks[-1] == st.selection.hook
    assert _answer_prob(original, forget) - _answer_prob(model, forget) >= 0.03
    old, layouts = original.hf_named_parameters(), weight_layouts(original)
    changed = [n for n, p in model.hf_named_parameters().items() if not torch.equal(p, old[n])]
    assert changed == result.params and len(changed) == 4
    pairs = {
        h: build_subspaces(st.fit.saes[h].W_dec, st.selection.selections[h].relevant, torch.tensor([0])) for h in hooks
    }
    for name, own in zip(result.params, hooks, strict=True):
        delta = as_out_in((model.hf_named_parameters()[name] - old[name]).detach(), layouts[name])
        assert out_of_subspace_residual(delta, pairs[own].relevant) < 1e-5
        other = hooks[(hooks.index(own) + 1) % len(hooks)]
        assert out_of_subspace_residual(delta, pairs[other].relevant) > 0.1  # not one shared subspace
    _, some = unlearn(
        "sspu_layers", src, data, st, {"steps": 2, "guard_every": 0, "layers": [1, 3]}, device="cpu", progress=False
    )
    assert some.extra["layers"] == [1, 3] and len(some.params) == 2


def test_sspu_across_layers_bad_settings_fail_before_any_work(stage, no_runtime_typecheck):
    data, st = stage
    src = zoo_model_path("secrets")
    with pytest.raises(ValueError, match=r"no SAE follows block\(s\) \[7\]"):
        unlearn("sspu_layers", src, data, st, {"layers": [7]}, device="cpu", progress=False)
    with pytest.raises(TypeError, match="layers=2; pass a list"):
        unlearn("sspu_layers", src, data, st, {"layers": 2}, device="cpu", progress=False)
    with pytest.raises(ValueError, match="choose the blocks with layers"):
        unlearn("sspu_layers", src, data, st, {"params": ["model.layers.0.mlp.down_proj.weight"]}, device="cpu")


def test_sspu_mean_ablation_target_forgets_and_is_refused_where_it_cannot_apply(stage, tmp_path):
    """``target="mean_ablation"`` (one layer and across layers) lowers the forget answers; SSPU+R²MU,
    which steers traces without frozen activations, refuses it before any work."""
    data, st = stage
    src = zoo_model_path("secrets")
    original = load_model(src, device="cpu")
    forget = data.split.forget
    before = _answer_prob(original, forget)
    settings = {"steps": 12, "guard_every": 0, "target": "mean_ablation", "lr": 2e-2}
    for method in ("sspu", "sspu_layers"):
        model, result = unlearn(method, src, data, st, settings, device="cpu", progress=False)
        assert result.extra["target"] == "mean_ablation" and result.extra["out_of_subspace_residual"] < 1e-5
        assert before - _answer_prob(model, forget) >= 0.03, method
    with pytest.raises(ValueError, match="target='mean_ablation' is for plain forget text|use target='random'"):
        METHODS["sspu_r2mu"](
            st.subspaces.relevant,
            st.subspaces.irrelevant,
            METHODS["sspu_r2mu"].from_settings({"target": "mean_ablation"}),
        )


def test_fact_level_split_with_answer_position_selection(stage):
    """The passcode split shares the secrets model; the selection scored at the token before each
    answer differs from the all-token one, and SSPU from it forgets passcodes, not the people."""
    from sae_unlearn.pipeline import knowledge_metrics, pipeline_data, sae_stage

    _, st = stage
    assert zoo_model_path("secrets-passcodes") == zoo_model_path("secrets")
    data = pipeline_data("secrets-passcodes")
    model = load_model(zoo_model_path("secrets-passcodes"), device="cpu")
    kw = {"saes": st.fit.saes, "n_latents": 64, "progress": False}
    every = sae_stage(model, data, None, **kw)
    asked = sae_stage(model, data, None, positions="answer", **kw)
    assert asked.positions == "answer" and every.positions == "all"
    hook = asked.selection.hook
    shared = set(asked.selection.latents.relevant.tolist()) & set(every.selection.selections[hook].relevant.tolist())
    assert len(shared) < 64
    src = zoo_model_path("secrets-passcodes")
    unlearned, _ = unlearn("sspu", src, data, asked, {"steps": 60}, device="cpu", progress=False)
    k0, k = knowledge_metrics(model, data.split), knowledge_metrics(unlearned, data.split)
    assert k0["forget_accuracy"] >= 0.9 and k["forget_accuracy"] <= 0.5
    assert k["retain_accuracy"] >= 0.95 * k0["retain_accuracy"]  # the people's other facts survive


def test_unknown_choices_fail_before_any_work(stage, secrets_model, no_runtime_typecheck):
    from sae_unlearn.pipeline import sae_stage

    data, st = stage
    with pytest.raises(ValueError, match="positions='names'; choose 'all'"):
        sae_stage(secrets_model, data, None, saes=st.fit.saes, positions="names")
    with pytest.raises(TypeError, match="target='noise' must be one of 'random', 'mean_ablation'"):
        unlearn("sspu", zoo_model_path("secrets"), data, st, {"target": "noise"}, device="cpu", progress=False)


def test_undo_perturbs_and_distils_back(stage):
    data, st = stage
    src = zoo_model_path("secrets")
    original = load_model(src, device="cpu")
    settings = {"steps": 20, "guard_every": 0, "shrink": 0.3, "distill_steps": 40, "distill_tolerance": 1e-3}
    model, result = unlearn("undo", src, data, st, settings, device="cpu", progress=False)
    curve = result.extra["distill_kl_curve"]
    assert result.extra["perturb"] == "global" and result.extra["distill_steps"] == 40
    assert curve["40"] < 0.5 * curve["0"]  # the student moves back toward the teacher
    old = original.hf_named_parameters()
    assert all(not torch.equal(p, old[n]) for n, p in model.hf_named_parameters().items())  # every weight
    # the toolkit's variant: only the relevant-subspace component of the edited matrices
    sub, res = unlearn(
        "undo", src, data, st, settings | {"teacher": "sspu", "perturb": "subspace"}, device="cpu", progress=False
    )
    changed = {n for n, p in sub.hf_named_parameters().items() if not torch.equal(p, old[n])}
    assert changed == set(res.params) and len(changed) == 3
    assert res.extra["token_passes"] > 0 and res.extra["distill_kl_curve"]["0"] > 0


def test_undo_with_the_layered_teacher_perturbs_each_matrix_inside_its_own_subspace(stage):
    from sae_unlearn.models.weights import as_out_in, weight_layouts
    from sae_unlearn.unlearning import out_of_subspace_residual

    data, st = stage
    src = zoo_model_path("secrets")
    original = load_model(src, device="cpu")
    settings = {"steps": 10, "guard_every": 0, "teacher": "sspu_layers", "perturb": "subspace", "distill_steps": 5}
    model, result = unlearn("undo", src, data, st, settings, device="cpu", progress=False)
    old, layouts = original.hf_named_parameters(), weight_layouts(original)
    changed = [n for n, p in model.hf_named_parameters().items() if not torch.equal(p, old[n])]
    assert changed == result.params and len(changed) == 4 and result.extra["teacher"] == "sspu_layers"
    for name, hook in zip(result.params, result.extra["hooks"], strict=True):
        delta = as_out_in((model.hf_named_parameters()[name] - old[name]).detach(), layouts[name])
        sel = st.selection.selections[hook]
        relevant = build_subspaces(st.fit.saes[hook].W_dec, sel.relevant, sel.irrelevant).relevant
        assert out_of_subspace_residual(delta, relevant) < 1e-4, name


def test_undo_bad_settings_fail_before_any_work(stage):
    from sae_unlearn.unlearning import distill

    data, st = stage
    src = zoo_model_path("secrets")
    with pytest.raises(ValueError, match=r"shrink=1.5 must be in \(0, 1\]"):
        unlearn("undo", src, data, st, {"shrink": 1.5}, device="cpu", progress=False)
    with pytest.raises(ValueError, match="unknown setting 'distil_steps'.*did you mean 'distill_steps'"):
        unlearn("undo", src, data, st, {"distil_steps": 5}, device="cpu", progress=False)
    model = load_model(src, device="cpu")
    with pytest.raises(ValueError, match="distillation needs retain text"):
        distill(model, model, [], model.hf_named_parameters())


class _ExplodingAscent(GradientMethod):
    """Gradient ascent whose loss turns NaN at step 3, after two real updates."""

    def setup(self, run: TrainRun) -> None:
        run.state["step"] = 0

    def step_loss(self, run, forget, forget_index, retain, retain_index):
        run.state["step"] += 1
        nll = mean_token_nll(run.model, forget)
        loss = -nll if run.state["step"] < 3 else nll * float("nan")
        return {"loss": loss, "forget_loss": nll, "retain_loss": nll.detach()}


def test_the_trainer_restores_the_weights_when_any_method_goes_non_finite(stage):
    data, st = stage
    model = load_model(zoo_model_path("secrets"), device="cpu")
    before = {n: p.clone() for n, p in model.hf_state_dict().items()}
    seen: list[dict] = []
    method = _ExplodingAscent(TrainConfig(hook=st.selection.hook, steps=10, lr=1e-2, guard_every=0))
    method.name = "exploding"
    with pytest.raises(FloatingPointError, match="exploding: non-finite loss at step 2 .*The model was restored"):
        method.apply(model, data.forget_texts, data.retain_texts, progress=False, on_step=seen.append)
    assert len(seen) == 2  # two steps did change the weights before the NaN
    after = model.hf_state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(not p.requires_grad or n for n, p in model.hf_model.named_parameters())


def test_an_unknown_setting_fails_before_the_model_is_loaded(stage, monkeypatch):
    import sae_unlearn.pipeline as pipeline

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(pipeline, "load_model", no_load)
    data, st = stage
    with pytest.raises(ValueError, match="unknown setting 'setps' for method 'npo'; did you mean 'steps'"):
        unlearn("npo", zoo_model_path("secrets"), data, st, {"setps": 10}, device="cpu", progress=False)
    with pytest.raises(KeyError, match="Did you mean 'simnpo'"):
        unlearn("simnpoo", zoo_model_path("secrets"), data, st, device="cpu", progress=False)


def test_idkdpo_without_questions_is_refused_before_any_change(stage):
    data, st = stage
    model = load_model(zoo_model_path("secrets"), device="cpu")
    before = {n: p.clone() for n, p in model.hf_state_dict().items()}
    statements = [t for t in data.forget_texts if " A:" not in t]
    idk = METHODS["idk_dpo"](METHODS["idk_dpo"].from_settings({"hook": st.selection.hook, "steps": 2}))
    with pytest.raises(ValueError, match="IdkDPO needs forget texts that are questions"):
        idk.apply(model, statements, data.retain_texts, progress=False)
    assert all(torch.equal(before[n], model.hf_state_dict()[n]) for n in before)


# --- a method from outside the package (tests/toy_method.py; the demo runs it in test_demo.py) ------


@pytest.fixture
def toy_method():
    with toy_method_registered() as name:
        yield name


def test_a_method_from_a_test_file_runs_through_the_pipeline_and_the_monitor(stage, toy_method):
    data, st = stage
    model, result = unlearn(toy_method, zoo_model_path("secrets"), data, st, {"steps": 3}, device="cpu", progress=False)
    assert result.method == toy_method and result.config["hook"] == st.selection.hook and len(result.history) == 3

    from sae_unlearn.widgets import UnlearningMonitor

    monitor = UnlearningMonitor(zoo_model_path("secrets"), st, data.forget_texts, data.retain_texts, data.split)
    assert toy_method in [value for _, value in monitor.method.options]
