"""Plausible mistakes on a real (zoo) model fail early and clearly, and lose nothing."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from sae_unlearn.capture import capture_activations
from sae_unlearn.export import CARD_JSON, export_model
from sae_unlearn.models import load_model
from sae_unlearn.subspaces import build_subspaces
from sae_unlearn.unlearning import RMU, SSPU, SSPUConfig, UnlearningConfig
from sae_unlearn.utils import hash_directory, hash_state_dict

pytestmark = pytest.mark.integration
HOOK = "blocks.1.hook_resid_post"


def weights(model) -> str:
    return hash_state_dict(model.hf_state_dict())


def test_capture_refuses_a_string_and_overlong_texts(no_runtime_typecheck, secrets_model):
    with pytest.raises(TypeError, match=r"texts is a single string \('Q: Where does Pavel live\? A:'\)"):
        capture_activations(secrets_model, "Q: Where does Pavel live? A:", HOOK)
    long_text = "word " * 400
    with pytest.raises(ValueError, match=r"has \d+ tokens, more than the model's context of 256.*max_length=256"):
        capture_activations(secrets_model, [long_text], HOOK)
    store = capture_activations(secrets_model, [long_text], HOOK, max_length=256, progress=False)
    assert store.n_tokens == 255  # truncated to the context, BOS masked


@pytest.mark.parametrize(
    ("forget", "retain", "error", "message"),
    [
        ("Pavel lives in Lisbon.", ["Rosa lives in Oslo."], TypeError, "forget texts is a single string"),
        ([""], ["Rosa lives in Oslo."], ValueError, "empty or whitespace only"),
        (["Rosa lives in Oslo."], ["Rosa lives in Oslo."], ValueError, "in both the forget and the retain set"),
    ],
)
def test_unlearning_refuses_bad_data_before_touching_weights(secrets_model, forget, retain, error, message):
    before = weights(secrets_model)
    cfg = UnlearningConfig(hook=HOOK, steps=2)
    with pytest.raises(error, match=message):
        RMU(cfg).apply(secrets_model, forget, retain, progress=False)
    assert weights(secrets_model) == before


def test_sspu_names_a_subspace_from_the_wrong_sae(secrets_model):
    wrong = build_subspaces(torch.randn(256, 64), torch.arange(8), torch.arange(8, 16))  # a 64-wide SAE
    sspu = SSPU(wrong.relevant, wrong.irrelevant, SSPUConfig(hook=HOOK, steps=2))
    with pytest.raises(ValueError, match=r"subspaces live in 64 dimensions but the model's .* d_model=128.*SAE"):
        sspu.apply(secrets_model, ["Pavel lives in Lisbon."], ["Rosa lives in Oslo."], progress=False)


def test_missing_paths_and_damaged_weights_are_named(secrets_model, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="model folder /missing/path not found"):
        load_model("/missing/path")
    copy = tmp_path / "model"
    shutil.copytree(secrets_model.source, copy)
    weights_file = copy / "model.safetensors"
    with open(weights_file, "r+b") as fh:
        fh.truncate(weights_file.stat().st_size // 2)
    with pytest.raises(OSError, match=r"model.safetensors is damaged .* truncated or corrupt"):
        load_model(copy)
    assert time.perf_counter() - t0 < 10


def test_hub_name_without_network_fails_fast(monkeypatch):
    from sae_unlearn.models import loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ConnectionError, match="hub cannot be reached.*HF_HUB_OFFLINE=1"):
        load_model("gpt2")


def test_export_never_deletes_or_writes_into_the_source(secrets_model, tmp_path):
    source = Path(secrets_model.source)
    source_hash = hash_directory(source)
    card = {"method": "test"}
    with pytest.raises(ValueError, match=r"it contains the source model"):
        export_model(secrets_model, source.parent, card, overwrite=True, overwrite_non_export=True)
    with pytest.raises(ValueError, match=r"it lies inside the source model"):
        export_model(secrets_model, source / "sub", card, overwrite=True)
    with pytest.raises(ValueError, match=r"it is the source model"):
        export_model(secrets_model, source, card, overwrite=True, overwrite_non_export=True)
    link = tmp_path / "link"
    os.symlink(source.parent, link)  # the same folder reached through a symlink
    with pytest.raises(ValueError, match=r"contains the source model"):
        export_model(secrets_model, link, card, overwrite=True, overwrite_non_export=True)
    assert hash_directory(source) == source_hash


def test_overwrite_replaces_only_exports(secrets_model, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"non-empty folder that is not a previous export.*notes.txt"):
        export_model(secrets_model, folder, {"method": "test"}, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        export_model(secrets_model, folder, {"method": "test"})
    target = tmp_path / "export"
    export_model(secrets_model, target, {"method": "test", "round": 1})
    card = export_model(secrets_model, target, {"method": "test", "round": 2}, overwrite=True)  # an export: fine
    saved = json.loads((target / CARD_JSON).read_text())
    assert saved["round"] == 2 and saved["environment"]["torch_threads"] == torch.get_num_threads()
    assert card["weights_hash"] == saved["weights_hash"]
    export_model(secrets_model, folder, {"method": "test"}, overwrite=True, overwrite_non_export=True)
    assert not (folder / "notes.txt").exists()


def test_command_line_arguments_are_checked_before_any_work(tmp_path, capsys):
    from sae_unlearn.__main__ import main

    for argv, message in [
        (["demo", "--out", str(tmp_path / "d"), "--n-latents", "0"], "n_latents=0 must be an int >= 1"),
        (["demo", "--out", str(tmp_path / "d"), "--k", "0"], "n_latents=0 must be an int >= 1"),
        (["demo", "--out", str(tmp_path / "d"), "--steps", "0"], "steps=0 must be >= 1"),
        (["verify", str(tmp_path), "--relearn-steps", "-5"], "steps=(-5,): give non-negative"),
        (["verify", str(tmp_path), "--relearn-lrs", "0"], "every learning rate must be > 0"),
        (["verify", str(tmp_path), "--skip", "relern"], "did you mean 'relearn'"),
        (["verify", str(tmp_path / "nothing")], "MODEL_DIR"),
    ]:
        t0 = time.perf_counter()
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
        assert time.perf_counter() - t0 < 5, f"{argv} did work before failing"
    assert not (tmp_path / "d").exists()


def test_verify_names_a_missing_oracle_and_a_corrupt_card(secrets_model, tmp_path, capsys):
    from sae_unlearn.__main__ import main

    model_dir = tmp_path / "model"
    shutil.copytree(secrets_model.source, model_dir)
    with pytest.raises(SystemExit):
        main(["verify", str(model_dir), "--oracle", "/nonexistent"])
    assert "--oracle /nonexistent not found" in capsys.readouterr().err
    (model_dir / "zoo_card.json").unlink(missing_ok=True)
    for text, message in [('{"data": ', "is not valid JSON"), ("[1, 2]", "holds a JSON list, not an object")]:
        (model_dir / CARD_JSON).write_text(text)
        with pytest.raises(SystemExit):
            main(["verify", str(model_dir)])
        err = capsys.readouterr().err
        assert CARD_JSON in err and message in err
