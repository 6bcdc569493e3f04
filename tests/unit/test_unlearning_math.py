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
    assert get_method("sspu") is SSPU and get_method("rmu") is RMU and set(METHODS) >= {"rmu", "sspu"}
    with pytest.raises(KeyError, match="unknown unlearning method 'npo'; registered"):
        get_method("npo")
    with pytest.raises((ValueError, TypeCheckError), match="diagonal"):
        SSPUConfig(projection="diagonal")
    with pytest.raises(ValueError, match="steps=0"):
        UnlearningConfig(steps=0)
    cfg = SSPUConfig(hook="blocks.1.hook_resid_post", reg_weight=0.5)
    assert SSPUConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="relevant subspace is empty"):
        SSPU(orthonormal_basis(torch.zeros(2, 16)), IRR)
