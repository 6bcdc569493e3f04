"""AlphaEdit's null-space edit and the refusal check, on random tensors (no model)."""

import pytest
import torch

from sae_unlearn.evaluation.refusal import is_refusal
from sae_unlearn.unlearning import UniErase, UniEraseConfig
from sae_unlearn.unlearning.alphaedit import alphaedit_update, null_space_projector


def test_the_edit_maps_new_keys_and_leaves_old_keys_alone():
    g = torch.Generator().manual_seed(0)
    old = torch.randn(400, 6, generator=g) @ torch.randn(6, 24, generator=g)  # keys in a 6-dim subspace
    proj, rank = null_space_projector(old, energy=0.01)
    assert rank == 18 and torch.allclose(proj @ proj, proj, atol=1e-8)
    new = torch.randn(3, 24, generator=g)
    residuals = torch.randn(3, 10, generator=g)
    delta = alphaedit_update(proj, new, residuals, ridge=1e-3)
    assert delta.shape == (10, 24)
    assert (delta @ old.double().T).abs().max() < 1e-6  # old keys keep their values
    assert torch.allclose(delta @ new.double().T, residuals.double().T, atol=0.05)  # new keys get theirs
    one = alphaedit_update(proj, new[:1], residuals[:1], ridge=1.0)  # scale-free ridge: r / (1 + ridge)
    assert torch.allclose(one @ new[0].double(), residuals[0].double() / 2, atol=1e-6)


def test_edit_inputs_are_checked(no_runtime_typecheck):
    with pytest.raises(ValueError, match="energy=1.5"):
        null_space_projector(torch.randn(4, 3), energy=1.5)
    with pytest.raises(ValueError, match="non-empty"):
        null_space_projector(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="3 keys but 2 residuals"):
        alphaedit_update(torch.eye(4), torch.randn(3, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match="ridge=0"):
        alphaedit_update(torch.eye(4), torch.randn(3, 4), torch.randn(3, 5), ridge=0)


def test_refusals_and_unierase_settings(no_runtime_typecheck):
    assert is_refusal(" I don't know. Q: next", ["I don't know."])
    assert is_refusal("  i DON'T   know.", ["I don't know."])
    assert not is_refusal(" Oslo.", ["I don't know."])
    with pytest.raises(ValueError, match="token=' <x>'"):
        UniEraseConfig(token=" <x>")
    with pytest.raises(TypeError, match="token_trains='all' must be one of"):
        UniEraseConfig(token_trains="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="setps"):
        UniErase.from_settings({"setps": 3})
