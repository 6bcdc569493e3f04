import pytest
import torch

from sae_unlearn.atomic import atomic_directory
from sae_unlearn.utils import distinct_parameters, frozen_parameters, hash_state_dict, page_out, seeded, stable_hash


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")
    # only the empty lock file beside the target (filelock's; no process holds it) remains
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] in ([], [".out.lock"])


def test_atomic_directory_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(FileExistsError, match="overwrite=True"), atomic_directory(target):
        pass
    with pytest.raises(RuntimeError), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError
    assert (target / "a").read_text() == "1"


def test_seeded_restores_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(0):
        inner = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with seeded(0):
        assert torch.equal(torch.rand(3), inner)


def test_hashes():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    sd = {"w": torch.ones(2, 2)}
    assert hash_state_dict(sd) == hash_state_dict({"w": torch.ones(2, 2)})
    assert hash_state_dict(sd) != hash_state_dict({"w": torch.ones(2, 2) + 1e-7})


def test_distinct_parameters_lists_a_tied_tensor_once():
    emb = torch.nn.Parameter(torch.zeros(4, 2))
    other = torch.nn.Parameter(torch.zeros(2))
    named = {"wte.weight": emb, "h.0.bias": other, "lm_head.weight": emb}
    assert list(distinct_parameters(named)) == ["wte.weight", "h.0.bias"]


def test_page_out_keeps_values(tmp_path):
    from safetensors.torch import load_file, save_file

    save_file({"w": torch.arange(300_000, dtype=torch.float32)}, str(tmp_path / "w.safetensors"))
    mapped = load_file(str(tmp_path / "w.safetensors"))["w"]
    written = torch.arange(300_000, dtype=torch.float32) * 2
    ok = page_out([mapped, written, torch.zeros(0)])
    assert isinstance(ok, bool)
    assert torch.equal(mapped, torch.arange(300_000, dtype=torch.float32))
    assert torch.equal(written, torch.arange(300_000, dtype=torch.float32) * 2)


def test_frozen_parameters_backpropagates_to_outside_tensors_only_and_restores_flags():
    layer = torch.nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    a = torch.ones(3, requires_grad=True)
    with frozen_parameters(layer):
        layer(a).sum().backward()
    assert a.grad is not None and layer.weight.grad is None
    assert layer.weight.requires_grad and not layer.bias.requires_grad
    with pytest.raises(RuntimeError), frozen_parameters(layer):
        raise RuntimeError("restored on error too")
    assert layer.weight.requires_grad
