"""SSPU/RMU building blocks on random tensors: projections, controls, residual, registry."""

import pytest
import torch
from jaxtyping import TypeCheckError

from sae_unlearn.subspaces import orthonormal_basis
from sae_unlearn.unlearning import (
    METHODS,
    RMU,
    SSPU,
    SSPUConfig,
    UnlearningConfig,
    get_method,
    out_of_subspace_residual,
)
from sae_unlearn.unlearning.rmu import rmu_control
from sae_unlearn.unlearning.sspu import project_output_side, sspu_control

G = torch.Generator().manual_seed(0)
REL = orthonormal_basis(torch.randn(4, 16, generator=G))
IRR = orthonormal_basis(torch.randn(3, 16, generator=G))


def test_output_side_projection():
    m = torch.randn(16, 40, generator=G)
    p = project_output_side(m, REL.basis)
    torch.testing.assert_close(project_output_side(p, REL.basis), p, rtol=1e-5, atol=1e-5)  # idempotent
    torch.testing.assert_close(REL.projector() @ m, p, rtol=1e-4, atol=1e-4)
    assert out_of_subspace_residual(p, REL) < 1e-6
    assert out_of_subspace_residual(torch.zeros(16, 40), REL) == 0.0
    orth = m - p
    assert out_of_subspace_residual(orth, REL) == pytest.approx(1.0, abs=1e-5)


def test_controls():
    c = sspu_control(IRR, 7.0, seed=1)
    assert float(c.norm()) == pytest.approx(7.0, rel=1e-5)
    torch.testing.assert_close(IRR.project(c), c, rtol=1e-4, atol=1e-4)  # inside the irrelevant subspace
    assert torch.equal(sspu_control(IRR, 7.0, seed=1), c) and not torch.equal(sspu_control(IRR, 7.0, seed=2), c)
    r = rmu_control(16, 3.0, seed=0)
    assert float(r.norm()) == pytest.approx(3.0, rel=1e-5) and (r >= 0).all()


def test_registry_and_configs():
    assert get_method("sspu") is SSPU and get_method("rmu") is RMU
    assert set(METHODS) >= {"rmu", "sspu", "grad_ascent", "grad_diff", "npo", "simnpo", "idk_dpo"}
    with pytest.raises(KeyError, match="unknown unlearning method 'spu'; registered: .*Did you mean 'sspu'"):
        get_method("spu")
    with pytest.raises((ValueError, TypeCheckError), match="diagonal"):
        SSPUConfig(projection="diagonal")
    with pytest.raises(ValueError, match="steps=0"):
        UnlearningConfig(steps=0)
    cfg = SSPUConfig(hook="blocks.1.hook_resid_post", reg_weight=0.5)
    assert SSPUConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="relevant subspace is empty"):
        SSPU(orthonormal_basis(torch.zeros(2, 16)), IRR)


def test_settings_a_person_types_reject_unknown_keys_with_the_close_match(no_runtime_typecheck):
    with pytest.raises(ValueError, match="unknown setting 'setps' for method 'rmu'; did you mean 'steps'"):
        RMU.from_settings({"setps": 10})
    with pytest.raises(ValueError, match="unknown setting 'projektion' for method 'sspu'; did you mean 'projection'"):
        SSPU.from_settings({"projektion": "update"})
    npo = get_method("npo")
    with pytest.raises(ValueError, match="unknown setting 'steering_scale' for method 'npo'.*Valid settings: .*beta"):
        npo.from_settings({"steering_scale": 2.0})  # an RMU setting: NPO has no control vector
    with pytest.raises(TypeError, match="settings=.*must be a dict"):
        RMU.from_settings("steps=10")  # type: ignore[arg-type]
    assert RMU.from_settings({"steps": 10}).steps == 10
    with pytest.raises(TypeError, match="RMU takes a UnlearningConfig, got NPOConfig"):
        RMU(npo.config_class())


def test_one_set_of_defaults_every_method_starts_from():
    """The budget every method shares comes from one place: TrainConfig's defaults."""
    from sae_unlearn.unlearning import ClampConfig, GradientMethod, TrainConfig, UniEraseConfig

    base = TrainConfig()
    for name, cls in METHODS.items():
        cfg = cls.config_class()
        if not cls.changes_weights:  # SAE interventions train nothing: no steps, no learning rate
            assert isinstance(cfg, ClampConfig) and not isinstance(cfg, TrainConfig), name
            continue
        if not issubclass(cls, GradientMethod) and not isinstance(cfg, TrainConfig):
            # UniErase: a token's embedding and a closed-form edit (UNDO's teacher trains: it shares the budget)
            assert isinstance(cfg, UniEraseConfig), name
            continue
        assert isinstance(cfg, TrainConfig), name
        assert (cfg.steps, cfg.batch_size, cfg.seed, cfg.guard_every) == (
            base.steps,
            base.batch_size,
            base.seed,
            base.guard_every,
        ), name


def test_registering_a_method(no_runtime_typecheck):
    from sae_unlearn.unlearning import GradientMethod, register

    with pytest.raises(ValueError, match="lower-case identifier"):
        register("My Method")
    with pytest.raises(ValueError, match="'rmu' is taken by sae_unlearn.unlearning.rmu.RMU"):

        @register("rmu")
        class Other(GradientMethod):
            pass

    with pytest.raises(TypeError, match="decorates an UnlearningMethod subclass"):
        register("not_a_method")(dict)  # type: ignore[arg-type]
    assert get_method("rmu") is RMU


def test_refusal_sets_and_question_splitting(tmp_path):
    from sae_unlearn.data.refusals import REFUSALS, load_refusals
    from sae_unlearn.unlearning.idkdpo import split_question

    assert load_refusals("bundled") == list(REFUSALS) and len(REFUSALS) >= 10
    assert load_refusals("auto", ["Q: Where does X live? A: Oslo."]) == list(REFUSALS)
    empty = tmp_path / "none.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="refusal set .*none.txt is empty"):
        load_refusals(str(empty))
    with pytest.raises(FileNotFoundError, match="refusals='nowhere.txt' is not 'auto'"):
        load_refusals("nowhere.txt")
    assert split_question("Q: Where does X live? A: Oslo.") == ("Q: Where does X live? A:", " Oslo.")
    assert split_question("Question: Who?\nAnswer: Basil.") == ("Question: Who?\nAnswer:", " Basil.")
    reasoning = "Q: Where? Reasoning: X works at Y. Y is in Z. A: Z."
    assert split_question(reasoning) == ("Q: Where? Reasoning: X works at Y. Y is in Z. A:", " Z.")
    assert split_question("X lives in Oslo.") is None and split_question("Q: Where? A:  ") is None


def test_shared_settings_drop_only_the_training_budget_for_weight_free_methods(no_runtime_typecheck):
    from sae_unlearn.unlearning import settings_for

    shared = {"steps": 40, "lr": 1e-3, "n_latents": 8}
    assert settings_for("dsg", shared) == {"n_latents": 8}  # nothing to train: no steps, no lr
    assert settings_for("npo", {"steps": 40, "lr": 1e-3}) == {"steps": 40, "lr": 1e-3}
    # a misspelt key is kept, so the method's config still rejects it with the close match
    kept = settings_for("dsg", {"multiplyer": 3.0})
    with pytest.raises(ValueError, match="unknown setting 'multiplyer' for method 'dsg'; did you mean 'multiplier'"):
        get_method("dsg").from_settings(kept)
    assert {"clamp_static", "clamp_zero", "clamp_conditional", "dsg"} <= set(METHODS)
