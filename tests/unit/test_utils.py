import pytest
import torch

from sae_unlearn.atomic import atomic_directory
from sae_unlearn.utils import hash_state_dict, seeded, stable_hash


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
