"""``python -m sae_unlearn verify``: every path is resolved and checked before any model is loaded
(the output folder is computed first, never inside a model folder read; empty folders and damaged
weights are named), and a failed check leaves nothing behind. No model is loaded here: the folders
hold a ``config.json`` (and damaged weights), and the first step of the work is replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sae_unlearn.__main__ import main
from sae_unlearn.verification import cli


def _folder(path: Path, weights: bool = False) -> Path:
    """A folder that looks like a Hugging Face model (config.json; whole or truncated weights)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    if weights:
        save_file({"w": torch.zeros(256)}, path / "model.safetensors")
    return path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


class _Stop(Exception):
    pass


def test_verify_dot_resolves_the_folder_and_checks_out_before_any_work(tmp_path, capsys, monkeypatch):
    model = _folder(tmp_path / "model", weights=True)
    oracle = _folder(tmp_path / "oracle")
    taken: list[Path] = []

    def first_step(folder, what="run"):  # the lock on the output folder comes before any model loads
        taken.append(Path(folder))
        raise _Stop

    monkeypatch.setattr(cli, "output_lock", first_step)
    monkeypatch.chdir(model)
    base = ["verify", ".", "--data", "secrets", "--oracle", str(oracle), "--original", str(oracle)]
    with pytest.raises(_Stop):
        main(base)
    assert taken == [tmp_path / "model-verification"]  # `.` was `PosixPath('.') has an empty name`, after the work
    (tmp_path / "report.txt").write_text("")
    for out, message in [
        (".", f"--out {model} is inside MODEL_DIR {model}"),
        ("sub/dir", f"--out {model / 'sub/dir'} is inside MODEL_DIR {model}"),
        (str(oracle / "v"), f"--out {oracle / 'v'} is inside --oracle {oracle}"),
        (str(tmp_path / "report.txt"), "is a file; pass a folder"),
    ]:
        with pytest.raises(SystemExit):
            main([*base, "--out", out])
        assert message in capsys.readouterr().err
    assert taken == [tmp_path / "model-verification"]
    assert _listing(tmp_path) == [
        "model",
        "model/config.json",
        "model/model.safetensors",
        "oracle",
        "oracle/config.json",
        "report.txt",
    ]


@pytest.mark.parametrize("flag", ["--oracle", "--original"])
def test_an_empty_folder_as_oracle_or_original_is_named(tmp_path, capsys, flag):
    model = _folder(tmp_path / "model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        main(["verify", str(model), "--data", "secrets", flag, str(empty)])
    err = capsys.readouterr().err
    assert f"{flag} {empty} is not a Hugging Face model folder (no config.json)" in err
    assert _listing(tmp_path) == ["empty", "model", "model/config.json"]


@pytest.mark.parametrize("damaged", ["MODEL_DIR", "--oracle"])
def test_truncated_weights_are_named_before_any_work(tmp_path, capsys, damaged):
    model = _folder(tmp_path / "model", weights=True)
    oracle = _folder(tmp_path / "oracle", weights=True)
    bad = (model if damaged == "MODEL_DIR" else oracle) / "model.safetensors"
    bad.write_bytes(bad.read_bytes()[:-100])
    before = _listing(tmp_path)
    with pytest.raises(SystemExit):
        main(["verify", str(model), "--data", "secrets", "--oracle", str(oracle)])
    err = capsys.readouterr().err
    assert f"{damaged}: {bad} is damaged" in err and "truncated or corrupt" in err
    assert _listing(tmp_path) == before
