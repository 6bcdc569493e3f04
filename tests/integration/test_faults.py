"""Fault injection: export and SAE fitting really killed (SIGKILL) in a child process.

The child counts the file-system steps it takes (rename, replace, fsync, mkdir, rmtree; saving
weights, tokenizer, cards and checkpoints all go through them) and kills itself at the N-th,
N drawn by seed from the steps of an uninterrupted run. Afterwards: the source model is intact,
the target is absent, the old export or the new one (card and weights of one export, never
mixed), and a re-run succeeds. An SAE fit killed anywhere, even while a checkpoint is being
written, resumes on the next call and ends with the same weights as an uninterrupted fit.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import torch

from sae_unlearn.atomic import locked_parent, recover_directory
from sae_unlearn.export import CARD_JSON, export_model
from sae_unlearn.saes import SAEFitConfig, fit_saes
from sae_unlearn.utils import hash_directory, hash_state_dict, preserved_parameters
from tests.fault_injection import run_child
from tests.unit.test_sae_fit import HOOKS, sparse_store

pytestmark = pytest.mark.integration
EXPORT_CHILD = r"""
import torch
from sae_unlearn.export import export_model
from sae_unlearn.models import load_model
src, target, tag, overwrite = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
model = load_model(src, device="cpu")
with torch.no_grad():
    next(iter(model.hf_named_parameters().values())).add_(float(tag))  # weights of this export
arm()
export_model(model, target, {"method": "fault-test", "tag": tag}, overwrite=overwrite)
print("DONE", calls[0], flush=True)
"""

FIT_CHILD = r"""
import json
from sae_unlearn.saes import SAEFitConfig, fit_saes
from tests.fault_injection import run_child
from tests.unit.test_sae_fit import HOOKS, sparse_store
store = sparse_store()
cfg = SAEFitConfig(**json.loads(sys.argv[2]))
arm()
fit_saes(store, HOOKS, cfg, out_dir=sys.argv[1], progress=False)
print("DONE", calls[0], flush=True)
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_state(target: Path) -> tuple[str, str] | None:
    """``(tag, weights sha)`` of a complete export at ``target``; ``None`` when absent."""
    if not target.exists():
        return None
    card = json.loads((target / CARD_JSON).read_text())
    return card["tag"], sha(target / "model.safetensors")


@pytest.fixture(scope="module")
def source_dir(secrets_model) -> Path:
    return Path(secrets_model.source)


@pytest.fixture(scope="module")
def clean_export(source_dir, tmp_path_factory):
    """An uninterrupted child export (tag 2): its file list, weights sha and step count."""
    target = tmp_path_factory.mktemp("calibrate") / "export"
    code, out = run_child(EXPORT_CHILD, [str(source_dir), str(target), "2", "0"])
    assert code == 0 and "DONE" in out, out
    files = sorted(p.name for p in target.iterdir())
    return {"files": files, "sha": sha(target / "model.safetensors"), "steps": int(out.split("DONE")[1].split()[0])}


@pytest.mark.parametrize("seed", range(4))
def test_export_killed_at_a_random_step(secrets_model, source_dir, clean_export, tmp_path, seed):
    source_hash = hash_directory(source_dir)
    model_hash = hash_state_dict(secrets_model.hf_state_dict())
    target = tmp_path / "export"
    overwrite = seed % 2 == 1
    old = None
    if overwrite:  # an earlier export (tag 1) that the killed one was replacing
        name, p = next(iter(secrets_model.hf_named_parameters().items()))
        with preserved_parameters({name: p}), torch.no_grad():  # the shared model is put back bit for bit
            p.add_(1.0)
            export_model(secrets_model, target, {"method": "fault-test", "tag": "1"})
        old = export_state(target)
    kill_at = random.Random(seed).randint(1, clean_export["steps"])
    code, out = run_child(EXPORT_CHILD, [str(source_dir), str(target), "2", "1" if overwrite else "0"], kill_at)
    assert code == -9, f"the child was not killed at step {kill_at}: {out}"
    assert hash_directory(source_dir) == source_hash, "the source model changed"
    allowed = {None, old, ("2", clean_export["sha"])}
    state = export_state(target)
    assert state in allowed, f"mixed or partial export after a kill at step {kill_at}: {state}"
    if state is not None:
        assert sorted(p.name for p in target.iterdir()) == clean_export["files"]
    with locked_parent(target):
        recover_directory(target)  # what the next export does first
    if overwrite:
        assert export_state(target) in {old, ("2", clean_export["sha"])}, "an interrupted overwrite lost the export"
    export_model(secrets_model, target, {"method": "fault-test", "tag": "3"}, overwrite=True)  # the re-run
    assert export_state(target)[0] == "3"
    # beside the export only its empty lock file (filelock's, kept by design; a killed holder releases it)
    left = [p.name for p in tmp_path.iterdir() if p.name != ".export.lock"]
    assert left == ["export"], "temporaries were left behind"
    assert hash_directory(source_dir) == source_hash
    assert hash_state_dict(secrets_model.hf_state_dict()) == model_hash, "the shared session model changed"


FIT_CFG = {"expansion_factor": 4, "k": 8, "training_samples": 40_000, "batch_size": 256, "n_checkpoints": 3}


@pytest.fixture(scope="module")
def clean_fit(tmp_path_factory):
    """An uninterrupted child fit: its step count, and the reference weights fitted here."""
    out_dir = tmp_path_factory.mktemp("fit-calibrate")
    code, out = run_child(FIT_CHILD, [str(out_dir), json.dumps(FIT_CFG)])
    assert code == 0 and "DONE" in out, out
    ref = fit_saes(sparse_store(), HOOKS, SAEFitConfig(**FIT_CFG, device="cpu"), progress=False)
    return {"steps": int(out.split("DONE")[1].split()[0]), "ref": ref}


@pytest.mark.parametrize("seed", range(4))
def test_sae_fit_killed_at_a_random_step_resumes_to_the_same_weights(clean_fit, tmp_path, seed):
    kill_at = random.Random(100 + seed).randint(1, clean_fit["steps"])
    code, out = run_child(FIT_CHILD, [str(tmp_path), json.dumps(FIT_CFG)], kill_at)
    assert code == -9, f"the child was not killed at step {kill_at}: {out}"
    resumed = fit_saes(sparse_store(), HOOKS, SAEFitConfig(**FIT_CFG, device="cpu"), out_dir=tmp_path, progress=False)
    for h in HOOKS:
        torch.testing.assert_close(resumed.saes[h].W_dec, clean_fit["ref"].saes[h].W_dec, rtol=0, atol=0)


def test_checkpoint_missing_files_is_not_resumed_from(clean_fit, tmp_path, caplog):
    """The reported failure: a checkpoint folder without ``activation_scaler.json`` (killed while
    written) made every later fit crash. Now it is removed with a warning and the fit starts afresh."""
    from sae_unlearn.saes.training import _fit_key

    store, cfg = sparse_store(), SAEFitConfig(**FIT_CFG, device="cpu")
    for h in HOOKS:  # one SAE's weights written, nothing else
        broken = tmp_path / "sae_checkpoints" / _fit_key(cfg, HOOKS, store, "") / "10240" / h
        broken.mkdir(parents=True)
    (broken / "sae_weights.safetensors").write_bytes(b"\0" * 10)
    with caplog.at_level("WARNING"):
        fit = fit_saes(store, HOOKS, cfg, out_dir=tmp_path, progress=False)
    assert "incomplete SAE checkpoint" in caplog.text
    torch.testing.assert_close(fit.saes[HOOKS[0]].W_dec, clean_fit["ref"].saes[HOOKS[0]].W_dec, rtol=0, atol=0)
