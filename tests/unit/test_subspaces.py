import pytest
import torch

from sae_unlearn.subspaces import build_subspaces, orthonormal_basis, principal_angles


def test_basis_is_orthonormal_and_spans_the_directions():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(10, 32, generator=g)
    s = orthonormal_basis(d)
    assert s.rank == 10 and s.orthogonality_error() < 1e-6
    torch.testing.assert_close(s.project(d), d, rtol=1e-4, atol=1e-4)  # every direction lies in the span


def test_dependent_directions_are_dropped_and_reported():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 16, generator=g)
    d = torch.stack([a, b, 2 * a - 3 * b, a, torch.zeros(16)])
    s = orthonormal_basis(d)
    assert s.rank == 2 and s.dropped == 3 and s.kept.tolist() == [0, 1]
    torch.testing.assert_close(s.project(d), d, rtol=1e-4, atol=1e-4)


def test_rank_is_capped_by_dimension():
    s = orthonormal_basis(torch.randn(40, 8, generator=torch.Generator().manual_seed(2)))
    assert s.rank == 8


def test_projector_is_idempotent_and_symmetric():
    s = orthonormal_basis(torch.randn(5, 12, generator=torch.Generator().manual_seed(3)))
    p = s.projector().double()
    torch.testing.assert_close(p @ p, p, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p, p.T)


def test_principal_angles():
    e = torch.eye(6)
    a, b = orthonormal_basis(e[:2]), orthonormal_basis(e[2:4])
    assert torch.allclose(principal_angles(a, b), torch.tensor([90.0, 90.0]))
    c = orthonormal_basis(torch.stack([e[0], e[1] + e[2]]))
    angles = principal_angles(a, c)
    assert angles[0] == pytest.approx(0.0, abs=1e-3) and angles[1] == pytest.approx(45.0, abs=1e-3)


def test_build_subspaces_and_errors():
    w = torch.randn(64, 16, generator=torch.Generator().manual_seed(4))
    pair = build_subspaces(w, torch.tensor([3, 5, 7]), torch.tensor([10, 11]))
    diag = pair.diagnostics()
    assert diag["relevant_rank"] == 3 and diag["irrelevant_rank"] == 2 and len(diag["principal_angles_deg"]) == 2
    assert diag["orthogonality_error"] < 1e-6
    with pytest.raises(IndexError, match="out of range for an SAE with 64 latents"):
        build_subspaces(w, torch.tensor([64]), torch.tensor([0]))
    with pytest.raises(ValueError, match="non-empty"):
        orthonormal_basis(torch.zeros(0, 4))


def test_mean_ablation_target_replaces_only_the_relevant_component():
    from sae_unlearn.unlearning.sspu import mean_ablation_target

    g = torch.Generator().manual_seed(0)
    rel = orthonormal_basis(torch.randn(3, 8, generator=g))
    acts, mean = torch.randn(2, 5, 8, generator=g), torch.randn(8, generator=g)
    target = mean_ablation_target(acts, rel, mean)
    torch.testing.assert_close(rel.project(target), rel.project(mean).expand_as(target), rtol=0, atol=1e-5)
    torch.testing.assert_close(target - rel.project(target), acts - rel.project(acts), rtol=0, atol=1e-5)
