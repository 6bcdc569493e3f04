"""``recipe --rehearse``: the gpt2-small recipe at gpt2-small's full width and vocabulary with
random weights and random 24576-latent SAEs in sae-lens's format, every stage measured; bad input
fails before any work; the bundled configs agree with the recipes naming them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sae_unlearn.__main__ import main
from sae_unlearn.recipes import load_recipe
from sae_unlearn.recipes.rehearsal import BUNDLED_CONFIGS, CONFIGS_DIR, SAE_FORMATS, bundled_config
from sae_unlearn.recipes.run import STAGES

pytestmark = pytest.mark.integration

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.toml"))
GPT2_RECIPE = next(p for p in RECIPES if p.name.startswith("gpt2-small"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_has_a_bundled_config_of_its_declared_shape_and_a_rehearsal_sae_format(path):
    recipe = load_recipe(path)
    name, config = bundled_config(recipe)  # raises when model_type or depth disagree with [model]
    assert (CONFIGS_DIR / name).is_file() and recipe.saes.release in SAE_FORMATS


def test_every_bundled_config_is_shipped_and_used():
    assert set(BUNDLED_CONFIGS.values()) == {p.name for p in CONFIGS_DIR.glob("*.json")}
    shapes = {name: json.loads((CONFIGS_DIR / name).read_text()) for name in BUNDLED_CONFIGS.values()}
    assert (shapes["gpt2-small.json"]["n_embd"], shapes["gpt2-small.json"]["vocab_size"]) == (768, 50257)
    gemma = shapes["gemma-2-2b-it.json"]
    assert (gemma["hidden_size"], gemma["num_hidden_layers"], gemma["vocab_size"], gemma["head_dim"]) == (
        2304,
        26,
        256000,
        256,
    )
    llama = shapes["llama-3.1-8b.json"]
    assert (llama["hidden_size"], llama["num_key_value_heads"], llama["rope_scaling"]["rope_type"]) == (
        4096,
        8,
        "llama3",
    )


def test_gpt2_recipe_rehearses_every_stage_at_full_width(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["recipe", str(GPT2_RECIPE), "--rehearse", "--layers", "4", "--steps", "2", "--texts", "4"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == list(STAGES)  # the recipe has [teach]: every stage, in order
    assert report["rehearsal"]["stages"] == report["stages"]
    for stage, cost in report["stages"].items():
        assert cost["seconds"] > 0 and cost["peak_rss_mb"] > 0, stage
    for stage in ("teach", "eval_before", "sae_stage", "unlearning", "eval_after"):
        assert report["stages"][stage]["tokens"] > 0, stage
    model = report["model"]
    assert (model["d_model"], model["vocab_size"], model["n_layers"], model["dtype"]) == (768, 50257, 4, "float32")
    assert model["bytes"] == model["n_params"] * 4
    assert report["saes"] == {"blocks.3.hook_resid_pre": {"d_in": 768, "d_sae": 24576}}
    cuts = report["rehearsal"]["cuts"]
    assert cuts["layers"] == 4 and cuts["unlearning_steps"] == 2 and cuts["teach_steps"] <= 2
    assert cuts["dropped_hooks"] == [f"blocks.{i}.hook_resid_pre" for i in range(4, 9)]
    assert report["unlearning"]["steps_run"] == 2 and report["data"]["n_forget_texts"] == 4
    assert report["export"]["max_logit_diff"] <= 1e-4  # the export reloads and agrees
    assert sorted(p.name for p in out.iterdir()) == ["model", "recipe.json", "report.json"]
    # the work folder (model, SAEs, data) is gone; only the lock files stay beside out
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["out"]
    assert '"stages"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rehearse", "--layers", "0"], r"--layers 0 must be >= 1"),
        (["--rehearse", "--layers", "13"], r"--layers 13 is more than openai-community/gpt2's 12 blocks; use 1..12"),
        (["--rehearse", "--layers", "2"], r"--layers 2 keeps none of the recipe's SAE hooks.*use --layers 4 or more"),
        (["--rehearse", "--steps", "0"], r"--steps 0 must be >= 1"),
        (["--rehearse", "--texts", "-1"], r"--texts -1 must be >= 1"),
        (["--steps", "2"], r"--steps cuts a rehearsal; add --rehearse"),
        (["--rehearse", "--check"], r"--check and --rehearse: choose one"),
        (["--rehearse", "--saes", "x"], r"--rehearse builds its own random model and SAEs"),
        (["--rehearse", "--dtype", "bf16"], r"--dtype 'bf16'; choose one of \('float32', 'bfloat16', 'float16'\)"),
    ],
    ids=[
        "layers-0",
        "layers-above-depth",
        "layers-without-hooks",
        "steps-0",
        "texts-negative",
        "no-rehearse",
        "check",
        "saes",
        "dtype",
    ],
)
def test_bad_rehearsal_input_fails_before_any_work(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["recipe", str(GPT2_RECIPE), "--out", str(tmp_path / "out"), *extra])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err), message
    assert list(tmp_path.iterdir()) == []


def test_rehearsing_into_a_file_or_a_model_without_bundled_config_fails_clearly(tmp_path, capsys):
    file = tmp_path / "out"
    file.write_text("not a folder")
    with pytest.raises(SystemExit):
        main(["recipe", str(GPT2_RECIPE), "--rehearse", "--out", str(file)])
    assert re.search(r"--out .*out is a file, not a folder", capsys.readouterr().err)
    other = tmp_path / "other.toml"
    other.write_text(GPT2_RECIPE.read_text().replace('"openai-community/gpt2"', '"someone/gpt2-copy"', 1))
    with pytest.raises(SystemExit):
        main(["recipe", str(other), "--rehearse", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "no bundled config for model 'someone/gpt2-copy'" in err and "'google/gemma-2-2b-it'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.toml", "out"]
