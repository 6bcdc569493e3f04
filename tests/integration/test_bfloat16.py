"""Every stage in bfloat16 on CPU that ``test_precision.py`` (capture, selection, SSPU, export of a
trained model, all on ``secrets``) leaves out: an SAE fitted on bfloat16 activations, selection,
an SAE intervention, its export, and SSPU on the architecture twins (``secrets-gpt2``: Conv1D
weights stored transposed; ``secrets-gemma2``); every registered method for two steps; UNDO's
distillation; and a quick verification.

Kept cheap: few texts, two steps, one small SAE per twin. SAEs train in float32 whatever the
model's dtype (the fit casts each bfloat16 batch up); what a bfloat16 model runs is tested
here, what it forgets beside float32 is the demo's table in ``benchmarks/real_size.md``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sae_unlearn.capture import capture_activations
from sae_unlearn.data.splits import UnlearningSplit
from sae_unlearn.export import export_model
from sae_unlearn.interventions import intervention_off
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.weights import as_out_in, weight_layouts
from sae_unlearn.pipeline import PipelineData, load_method, pipeline_data, sae_stage
from sae_unlearn.saes import SAEFitConfig, fit_saes
from sae_unlearn.unlearning import (
    METHODS,
    DistillConfig,
    GradientMethod,
    distill,
    method_runs_on,
    settings_for,
    why_method_cannot_run,
)
from sae_unlearn.unlearning.sspu import ProjectedUpdates
from sae_unlearn.utils import hash_state_dict
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

pytestmark = pytest.mark.integration

BF16 = torch.bfloat16
HOOK = "blocks.3.hook_resid_post"
TWINS = ("secrets-gpt2", "secrets-gemma2")
#: Where a method that cannot run on ``secrets`` runs instead: a reasoning model (R²MU), one that can refuse (UniErase).
ZOO_ORDER = ("secrets", "secrets-reasoning", "secrets-idk")
#: Two steps for every method (``settings_for`` drops what a method does not take) …
FEW_STEPS = {"steps": 2, "guard_every": 0, "batch_size": 8}
#: … and each method's own loops cut to a step or two.
CHEAP = {
    "undo": {"distill_steps": 2},
    "unierase": {
        "token_steps": 2,
        "target_steps": 2,
        "max_retain_questions": 8,
        "check_questions": 4,
        "min_refusal_rate": 0.0,  # two token steps cannot teach the refusal; what is tested is the arithmetic
    },
    "tar": {"tar_inner_steps": 1},
    "sspu_tar": {"tar_inner_steps": 1},
}
#: bfloat16's relative rounding of one weight (8 significant bits): 2**-8, with a factor 2 of margin.
ROUNDING = 2**-7


def _small(data: PipelineData, n_forget: int = 16, n_retain: int = 32) -> PipelineData:
    return replace(data, forget_texts=data.forget_texts[:n_forget], retain_texts=data.retain_texts[:n_retain])


def _prompts(data: PipelineData, n: int = 4) -> list[str]:
    return [q.prompt for q in data.split.forget[:n]]


def _bf16_params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.hf_named_parameters().items()}


def _changed(model, before: dict[str, torch.Tensor]) -> set[str]:
    now = model.hf_named_parameters()
    return {n for n, p in now.items() if n not in before or p.shape != before[n].shape or not torch.equal(p, before[n])}


def _assert_inside_subspace(method: ProjectedUpdates, model, before: dict[str, torch.Tensor], names) -> None:
    """Each change lies in its relevant subspace up to bfloat16's rounding of the weights: the float32
    master weights are inside exactly, the model holds them rounded."""
    layouts = weight_layouts(model)
    for n in names:
        w = as_out_in(model.hf_named_parameters()[n].detach().float(), layouts[n])
        delta = w - as_out_in(before[n].float(), layouts[n])
        basis = method.relevant_for(n).basis.float()
        outside = delta - basis @ (basis.T @ delta)
        assert delta.norm() > 0 and outside.norm() <= ROUNDING * w.norm(), n


# --- the twins: capture, SAE fit, selection, intervention, export, SSPU ------------------------------


@pytest.fixture(scope="module", params=TWINS)
def twin(request):
    """``(name, folder, bfloat16 model, small data, bfloat16 capture, SAE fit on it, stage with it)``."""
    name = request.param
    src = zoo_model_path(name, progress=False)
    model = load_model(src, device="cpu", dtype="bfloat16")
    data = _small(pipeline_data(name), n_retain=48)
    store = capture_activations(model, data.forget_texts + data.retain_texts, [HOOK], progress=False)
    fit = fit_saes(store, config=_tiny_fit(), progress=False)
    st = sae_stage(model, data, None, saes=fit.saes, n_latents=16, progress=False)
    return name, src, model, data, store, fit, st


def _tiny_fit() -> SAEFitConfig:
    return SAEFitConfig(training_samples=20 * 256, batch_size=256, n_checkpoints=0, device="cpu")


def test_an_sae_fitted_on_bfloat16_activations_trains_in_float32(twin):
    name, src, _, data, store, fit, st = twin
    assert store[HOOK].dtype == BF16
    sae = fit.saes[HOOK]
    assert sae.W_dec.dtype == sae.W_enc.dtype == torch.float32
    assert all(bool(torch.isfinite(p).all()) for p in sae.parameters())
    # the same fit on the float32 model's activations: the same SAE up to the inputs' rounding
    fp32 = load_model(src, device="cpu")
    ref = fit_saes(
        capture_activations(fp32, data.forget_texts + data.retain_texts, [HOOK], progress=False),
        config=_tiny_fit(),
        progress=False,
    )
    ev16, ev32 = fit.stats[HOOK].explained_variance, ref.stats[HOOK].explained_variance
    assert ev16 > 0.2 and abs(ev16 - ev32) <= 0.02, (name, ev16, ev32)
    # selection on the bfloat16 model scored it and picked forget-specific latents
    assert st.selection.hook == HOOK and len(st.selection.latents.relevant) == 16


def test_an_sae_intervention_on_a_bfloat16_twin_changes_the_forget_answers_and_exports(twin, tmp_path):
    name, src, _, data, _, _, st = twin
    model, method = load_method("clamp_conditional", src, st, {}, device="cpu", dtype="bfloat16")
    before = hash_state_dict(model.hf_state_dict())
    method.apply(model, data.forget_texts, data.retain_texts, progress=False)
    ids = model.tokenize(_prompts(data)).input_ids
    clamped = model.logits(ids).detach()
    with intervention_off(model):
        plain = model.logits(ids).detach()
    assert clamped.dtype == BF16 and bool(torch.isfinite(clamped).all())
    assert float((clamped.float() - plain.float()).abs().max()) > 1.0, name  # far above bfloat16's rounding
    assert hash_state_dict(model.hf_state_dict()) == before  # weight-free
    card = export_model(model, tmp_path / "iv", {"method": "clamp_conditional"})
    assert card["dtype"] == "bfloat16" and card["reload_weights_identical"] and card["max_logit_diff"] == 0.0
    # the shipped runtime in plain transformers rounds differently: a few ulps of the largest logit
    assert card["plain_transformers_max_logit_diff"] <= 4 * ROUNDING * float(clamped.float().abs().max())


def test_sspu_on_a_bfloat16_twin_edits_inside_the_subspace(twin):
    name, src, _, data, _, _, st = twin
    model, method = load_method("sspu", src, st, FEW_STEPS, device="cpu", dtype="bfloat16")
    before = _bf16_params(model)
    result = method.apply(model, data.forget_texts, data.retain_texts, progress=False)
    assert _changed(model, before) == set(result.params) and len(result.params) == 3
    assert {p.dtype for p in model.hf_model.parameters()} == {BF16}
    assert isinstance(method, ProjectedUpdates)
    _assert_inside_subspace(method, model, before, result.params)  # GPT-2's Conv1D: stored transposed
    assert bool(torch.isfinite(model.logits(model.tokenize(_prompts(data)).input_ids)).all()), name


# --- every registered method --------------------------------------------------------------------------


def test_every_cheap_setting_names_a_registered_method():
    assert set(CHEAP) <= set(METHODS)


@pytest.mark.filterwarnings("ignore:latents .* never fire on the forget texts")  # 16 texts: some are silent
@pytest.mark.parametrize("name", list(METHODS))
def test_each_registered_method_runs_in_bfloat16(stage, name):
    """Two steps in bfloat16 (the stage of ``secrets`` stands in on the other zoo models: same width;
    what is tested is the arithmetic, not what is forgotten): finite losses and logits, the model
    still bfloat16, the trained weights changed (and only they, for the trainer's methods), SSPU's
    changes inside its subspace, a weight-free method's intervention changing the forget logits."""
    data, st = stage
    zoo = next((z for z in ZOO_ORDER if method_runs_on(name, z)), None)
    if zoo is None:
        pytest.skip(why_method_cannot_run(name, "secrets"))
    small = _small(data if zoo == "secrets" else pipeline_data(zoo))
    settings = settings_for(name, FEW_STEPS | CHEAP.get(name, {}))
    model, method = load_method(name, zoo_model_path(zoo, progress=False), st, settings, device="cpu", dtype="bfloat16")
    before = _bf16_params(model)
    result = method.apply(model, small.forget_texts, small.retain_texts, progress=False)

    assert {p.dtype for p in model.hf_model.parameters()} == {BF16}
    numbers = [v for row in result.history for v in row.values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers), result.history
    ids = model.tokenize(_prompts(small) + small.retain_texts[:2]).input_ids
    logits = model.logits(ids)
    assert logits.dtype == BF16 and bool(torch.isfinite(logits).all())
    changed = _changed(model, before)
    if not type(method).changes_weights:
        assert not changed and model.intervention is not None
        with intervention_off(model):
            plain = model.logits(ids).detach()
        assert not torch.equal(plain, logits)
        return
    trained = [n for n in result.params if n in before]  # UniErase also names the new token's row
    assert trained and set(trained) <= changed, (trained, changed)
    if isinstance(method, GradientMethod):
        assert changed == set(result.params) and len(result.history) == FEW_STEPS["steps"]
        assert result.extra["token_passes"] > 0
    if isinstance(method, ProjectedUpdates):
        _assert_inside_subspace(method, model, before, result.params)


def test_undo_distillation_moves_bfloat16_weights_below_one_ulp_per_step():
    """A step of lr 1e-3 is a quarter of a bfloat16 ulp of a norm weight near 1: without float32
    master weights every one rounds away and the weight never moves."""
    data = _small(pipeline_data("secrets"))
    teacher = load_model(zoo_model_path("secrets", progress=False), device="cpu", dtype="bfloat16")
    student = load_model(zoo_model_path("secrets", progress=False), device="cpu", dtype="bfloat16")
    norm = student.hf_named_parameters()["model.norm.weight"]
    with torch.no_grad():
        norm.mul_(0.9)
    start = norm.detach().clone()
    out = distill(
        student,
        teacher,
        data.retain_texts,
        {"model.norm.weight": norm},
        DistillConfig(steps=6, batch_size=8, check_every=6, tolerance=1e-9),
    )
    assert norm.dtype == BF16 and (norm != start).float().mean() > 0.9
    assert out["kl_curve"]["6"] < out["kl_curve"]["0"]


# --- verification ------------------------------------------------------------------------------------

#: The cheapest verification: two relearning steps at one learning rate, a five-step probe, int8 only.
QUICK = VerifyConfig(
    attacks={
        "relearn": {"steps": (0, 2), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
        "probe": {"steps": 5},
        "quantization": {"bits": (8,)},
    },
    naturalness=None,
)


def test_a_quick_verification_in_bfloat16_finds_the_original_not_forgotten():
    full = verification_data("secrets")
    vdata = replace(
        full, split=UnlearningSplit(full.split.name, full.split.forget, full.split.retain[:24]), utility_sets={}
    )
    model = load_model(zoo_model_path("secrets", progress=False), device="cpu", dtype="bfloat16")
    oracle = load_model(zoo_model_path("secrets", oracle=True, progress=False), device="cpu", dtype="bfloat16")
    before = hash_state_dict(model.hf_state_dict())
    report = verify(model, vdata, measure(oracle, vdata, QUICK), QUICK, name="original bf16")
    assert hash_state_dict(model.hf_state_dict()) == before and model.dtype == BF16  # every attack put it back
    assert report.verdict == "not forgotten"
    assert report.model.unit.forget_accuracy >= 0.9 and report.oracle.unit.forget_accuracy <= 0.1
    assert report.model.control.retain_accuracy >= 0.9
    scores = [s.value for m in (report.model, report.oracle) for a in m.attacks.values() for s in a.scores.values()]
    assert scores and all(math.isfinite(v) for v in scores)
