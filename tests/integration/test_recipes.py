"""The ready recipes (recipes/*.toml), offline: each parses strictly, its registry SAEs exist in
sae-lens's bundled registry, and its hooks and parameter names resolve on a local random model of
the same architecture and depth; ``--check`` writes nothing; bad recipes fail before any work with
a message naming the fix and leave no output folder; the gpt2 recipe runs end to end on a small
random GPT-2 with local random SAEs standing in for the hub's."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformers import AutoModelForCausalLM, AutoTokenizer

from sae_unlearn.__main__ import main
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.architectures import ARCHITECTURES, Shape, small_config
from sae_unlearn.models.hooks import last_writer_layer
from sae_unlearn.models.weights import writer_weight
from sae_unlearn.recipes import RecipeError, check_recipe, load_recipe, run_recipe, with_overrides
from sae_unlearn.recipes.spec import registry_hook
from sae_unlearn.saes import check_pretrained_id

pytestmark = pytest.mark.integration

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.toml"))
GPT2_RECIPE = next(p for p in RECIPES if p.name.startswith("gpt2-small"))
GEMMA_RECIPE = next(p for p in RECIPES if p.name.startswith("gemma-2-2b-it"))
D = 64


#: Small random models of the recipes' architectures, at the recipe's depth (names depend only on these),
#: from the one per-architecture table (grouped-query attention where the architecture has it).
def _small_config(architecture: str, vocab: int, n_layers: int):
    gqa = 2 if ARCHITECTURES[architecture].grouped_query and architecture != "gemma2" else None
    return small_config(architecture, Shape(D, n_layers, 4, 2 * D, vocab, 256, gqa))


def _local_model(folder: Path, architecture: str, n_layers: int) -> Path:
    """A random model of ``architecture`` with ``n_layers`` blocks, saved with the secrets tokenizer."""
    tok = AutoTokenizer.from_pretrained(zoo_model_path("secrets", progress=False))
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(_small_config(architecture, len(tok), n_layers)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _edited(path: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, old
    out = tmp_path / path.name
    out.write_text(text.replace(old, new, 1))
    return out


def test_there_are_the_two_published_settings():
    assert {"gemma-2-2b-it_gemma-scope_wmdp-cyber.toml", "gpt2-small_res-jb_secrets.toml"} <= {p.name for p in RECIPES}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_with_registry_saes_and_documented_cost(path):
    recipe = load_recipe(path)
    assert recipe.model.architecture in ARCHITECTURES and recipe.saes.release and recipe.saes.ids
    for hook, sae_id in recipe.saes.ids.items():
        check_pretrained_id(recipe.saes.release, sae_id)  # in sae-lens's bundled registry
        assert last_writer_layer(hook) is not None and last_writer_layer(hook) >= 2  # the whole edit upstream
    expected = recipe.expected
    assert expected.gpu and expected.gpu_memory_gb > 0 and expected.minutes > 0 and expected.disk_gb > 0
    assert not expected.measured and "estimate" in expected.basis.lower()
    assert recipe.settings()["steps"] >= 100


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_hooks_and_parameters_resolve_on_a_local_model_of_the_same_architecture(path, tmp_path):
    recipe = load_recipe(path)
    folder = _local_model(tmp_path / "model", recipe.model.architecture, recipe.model.n_layers)
    model = load_model(folder, device="cpu")
    resolved = check_recipe(recipe, model)
    assert set(resolved) == set(recipe.saes.ids)
    params = model.hf_named_parameters()
    for hook, names in resolved.items():
        assert len(names) == 3 and all(n in params for n in names)
        assert names[-1] == writer_weight(model, last_writer_layer(hook)).name  # the chosen site's last writer
    other = "gpt2" if recipe.model.architecture != "gpt2" else "gemma2"
    wrong = load_model(_local_model(tmp_path / "other", other, recipe.model.n_layers), device="cpu")
    with pytest.raises(RecipeError, match=f"is for {recipe.model.architecture} with {recipe.model.n_layers} layers"):
        check_recipe(recipe, wrong)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_check_from_the_command_line_resolves_offline_and_writes_nothing(path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["recipe", str(path), "--check", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "is ready to run" in printed and "needs_hub" in printed
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_unknown_key_names_its_close_match(tmp_path, no_runtime_typecheck):
    bad = _edited(GPT2_RECIPE, tmp_path, "steps = 250", "stesp = 250")
    with pytest.raises(RecipeError, match=r"unknown \[unlearning\] key 'stesp'; did you mean 'steps'\?"):
        load_recipe(bad)
    bad = _edited(GPT2_RECIPE, tmp_path, "[selection]\n", "[selection]\nscorrer = 'mean_diff'\n")
    with pytest.raises(RecipeError, match=r"unknown key 'scorrer' in \[selection\]; did you mean 'scorer'\?"):
        load_recipe(bad)
    bad = _edited(GEMMA_RECIPE, tmp_path, "max_items = 2000", "max_items = '2000'")
    with pytest.raises(RecipeError, match=r"\[eval.control_mc\]: MCSource.max_items='2000' must be an int"):
        load_recipe(bad)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '"layer_7/width_16k/canonical"',
            '"layer_7/width_16k/canonicl"',
            r"SAE id 'layer_7/width_16k/canonicl' is not in release 'gemma-scope-2b-pt-res-canonical'; "
            r"close matches: \['layer_7/width_16k/canonical'",
        ),
        (
            'release = "gemma-scope-2b-pt-res-canonical"',
            'release = "gemma-scope-2b-pt-res-canonicall"',
            r"SAE release 'gemma-scope-2b-pt-res-canonicall' is not in sae-lens's pretrained registry; "
            r"close matches: \['gemma-scope-2b-pt-res-canonical'",
        ),
        (
            '"blocks.7.hook_resid_post" = "layer_7/',
            '"blocks.7.hook_resid_post" = "layer_8/',
            r"is an SAE of layer 8, not 7; pair each hook with its layer's SAE",
        ),
    ],
    ids=["missing-id", "missing-release", "wrong-layer"],
)
def test_a_recipe_naming_a_missing_sae_fails_clearly_and_writes_nothing(tmp_path, capsys, old, new, message):
    bad = _edited(GEMMA_RECIPE, tmp_path, old, new)
    with pytest.raises(RecipeError, match=message):
        load_recipe(bad)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["recipe", str(bad), "--out", str(out)])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)  # the same message on the command line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [bad.name]


def _fails_in_check_and_run(capsys, bad: Path, out: Path, message: str, *extra: str) -> None:
    """``--check`` and a run of ``bad`` both stop with ``message`` on stderr (exit 2), before any work."""
    for argv in (["--check"], []):
        with pytest.raises(SystemExit) as exit_info:
            main(["recipe", str(bad), "--out", str(out), *extra, *argv])
        assert exit_info.value.code == 2
        assert re.search(message, capsys.readouterr().err), message


def test_an_sae_id_of_another_site_than_its_hook_fails_in_check(tmp_path, capsys):
    """sae-lens's registry id of blocks.8.hook_resid_pre keyed by blocks.8.hook_resid_post: same layer,
    another site; the hook is known offline from the registry (the id, or Gemma Scope's repository kind)."""
    bad = _edited(
        GPT2_RECIPE, tmp_path, '"blocks.8.hook_resid_pre" = "blocks.8', '"blocks.8.hook_resid_post" = "blocks.8'
    )
    message = (
        r"ids\['blocks.8.hook_resid_post'\] = 'blocks.8.hook_resid_pre' is the SAE of 'blocks.8.hook_resid_pre' "
        r"\(sae-lens's registry\), not of 'blocks.8.hook_resid_post'.*Key it by 'blocks.8.hook_resid_pre'"
    )
    with pytest.raises(RecipeError, match=message):
        load_recipe(bad)
    _fails_in_check_and_run(capsys, bad, tmp_path / "out", message)
    assert not (tmp_path / "out").exists()
    assert registry_hook("gemma-scope-2b-pt-res-canonical", "layer_7/width_16k/canonical") == "blocks.7.hook_resid_post"
    assert registry_hook("gpt2-small-hook-z-kk", "blocks.5.hook_z") == "blocks.5.attn.hook_z"
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]


def test_a_reasoning_method_on_a_recipe_fails_in_check(tmp_path, capsys):
    bad = _edited(GPT2_RECIPE, tmp_path, 'method = "sspu"', 'method = "r2mu"')
    message = r"method='r2mu' unlearns reasoning traces and needs a model that reasons.*Use method = 'sspu' or 'rmu'"
    _fails_in_check_and_run(capsys, bad, tmp_path / "out", message)
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]


def test_out_inside_the_model_folder_fails_in_check_and_before_a_run(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 12}))
    saes = tmp_path / "saes"
    saes.mkdir()
    for out, what in ((model / "run", "the model folder"), (model, "the model folder"), (saes / "run", "the SAE")):
        message = f"output folder {re.escape(str(out))} is inside {what}.*never writes into its inputs"
        _fails_in_check_and_run(capsys, GPT2_RECIPE, out, message, "--model", str(model), "--saes", str(saes))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "saes"]
    assert [p.name for p in model.iterdir()] == ["config.json"] and list(saes.iterdir()) == []


def test_a_relative_out_leaving_the_working_directory_is_refused(tmp_path, capsys, monkeypatch):
    """A recipe file's ``out = "../x"`` would write outside the folder it is run from; an absolute
    ``out`` (or ``--out``) is taken as written."""
    bad = _edited(GPT2_RECIPE, tmp_path, 'out = "runs/', 'out = "../escaped/')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    message = rf"out='../escaped/.*' leaves the working directory {re.escape(str(work))}.*absolute"
    for argv in (["--check"], []):
        with pytest.raises(SystemExit):
            main(["recipe", str(bad), *argv])
        assert re.search(message, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name, "work"] and list(work.iterdir()) == []
    inside = load_recipe(_edited(GPT2_RECIPE, work, 'out = "runs/', 'out = "sub/../runs/'))
    assert inside.out_dir() == work / "sub/../runs/gpt2-small_res-jb_secrets"  # stays inside: accepted


def test_a_second_run_into_the_same_out_is_refused_at_once(tmp_path, capsys):
    """A run holds the output folder's writer lock (output_lock's) from before loading to the final
    rename; a second run into it stops at once instead of after all the work."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 12}))
    saes = tmp_path / "saes"
    saes.mkdir()
    out = tmp_path / "out"
    other = FileLock(tmp_path / ".out.writer.lock")  # what another run (or demo) into `out` holds
    with other:
        with pytest.raises(SystemExit):
            main(["recipe", str(GPT2_RECIPE), "--out", str(out), "--model", str(model), "--saes", str(saes)])
    assert "is being written by another process (another recipe run" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in model.iterdir()] == ["config.json"]


def test_a_run_that_needs_the_hub_offline_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecipeError, match=r"hub cannot be reached.*model openai-community/gpt2 \(or pass --model"):
        run_recipe(GPT2_RECIPE, out_dir=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_local_corpora_and_question_files_are_read_split_and_sampled(tmp_path):
    forget = tmp_path / "forget.jsonl"
    forget.write_text("".join(json.dumps({"text": f"exploit number {i} " * 30}) + "\n" for i in range(10)))
    retain = tmp_path / "retain.txt"
    retain.write_text(
        "\n".join([" = Heading = ", ""] + [f"Paragraph {i} about rivers and hills." * 3 for i in range(9)])
    )
    mc = tmp_path / "mc.jsonl"
    mc.write_text(
        "".join(json.dumps({"question": f"Q{i}?", "choices": ["a", "b"], "answer": i % 2}) + "\n" for i in range(7))
    )
    recipe = load_recipe(GEMMA_RECIPE)
    data = dataclasses.replace(
        recipe.data,
        forget=dataclasses.replace(recipe.data.forget, path=str(forget), max_chars=200, max_texts=15),
        retain=dataclasses.replace(recipe.data.retain, path=str(retain)),
    )
    evals = dataclasses.replace(
        recipe.eval,
        forget_mc=dataclasses.replace(recipe.eval.forget_mc, path=str(mc)),
        control_mc=dataclasses.replace(recipe.eval.control_mc, path=str(mc), max_items=5),
    )
    result = run_recipe(dataclasses.replace(recipe, data=data, eval=evals), tmp_path / "out", dry_run=True)
    # 10 texts of ~570 characters cut at <= 200 give 30 pieces, 15 sampled; the heading and blank line dropped
    assert result["local_data"] == {"forget": 15, "retain": 9, "forget_mc": 7, "control_mc": 5}
    assert [n.split(" (")[0] for n in result["needs_hub"]] == [
        "model google/gemma-2-2b-it",
        "SAEs of gemma-scope-2b-pt-res-canonical",
    ]
    assert not (tmp_path / "out").exists()
    missing = dataclasses.replace(recipe.data.forget, path=str(tmp_path / "nope.jsonl"), hub="")
    with pytest.raises(RecipeError, match=r"nope.jsonl not found and no hub dataset is named; create the file"):
        run_recipe(dataclasses.replace(recipe, data=dataclasses.replace(data, forget=missing)), dry_run=True)


def _random_saes(folder: Path, hooks: list[str], d_in: int, d_sae: int = 256) -> Path:
    """sae-lens SAE folders (cfg.json + weights) with random weights, one per hook."""
    torch.manual_seed(0)
    for hook in hooks:
        cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook))
        StandardSAE(cfg).save_model(folder / hook)
    return folder


def test_gpt2_recipe_runs_end_to_end_offline_on_a_local_model(tmp_path):
    """The gpt2 recipe as written, but a small random GPT-2 of its depth and random SAEs at its hooks
    stand in for the hub's gpt2-small and gpt2-small-res-jb, and a few steps stand in for the budget."""
    recipe = load_recipe(GPT2_RECIPE)
    folder = _local_model(tmp_path / "gpt2", "gpt2", recipe.model.n_layers)
    hooks = list(recipe.saes.ids)
    saes = _random_saes(tmp_path / "saes", hooks, D)
    recipe = with_overrides(recipe, model=str(folder), saes=str(saes), device="cpu")
    assert recipe.teach is not None
    recipe = dataclasses.replace(
        recipe,
        teach=dataclasses.replace(recipe.teach, epochs=1),
        unlearning={**recipe.unlearning, "steps": 3, "guard_every": 0},
        selection=dataclasses.replace(recipe.selection, n_latents=8),
    )
    out = tmp_path / "run"
    checked = run_recipe(recipe, out, dry_run=True)  # the local model's config.json agrees with [model]
    assert checked["needs_hub"] == [] and set(checked["hooks"]) == set(hooks) and not out.exists()
    gemma = with_overrides(load_recipe(GEMMA_RECIPE), model=str(folder))
    with pytest.raises(RecipeError, match=r"is for gemma2 with 26 layers, but .*gpt2 is gpt2 with 12"):
        run_recipe(gemma, out, dry_run=True)
    report = run_recipe(recipe, out, progress=False)
    assert report["selection"]["hook"] in hooks and set(report["sae"]) == set(hooks)
    assert len(report["teach"]["epoch_losses"]) == 1
    for when in ("before", "after"):
        assert {"forget_accuracy", "retain_accuracy", "forget_answer_prob"} <= set(report[when])
    assert report["unlearning"]["out_of_subspace_residual"] < 1e-5 and report["unlearning"]["update_norm"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["model", "recipe.json", "report.json"]
    assert json.loads((out / "model" / "unlearning_card.json").read_text())["path"] == str(out / "model")
    assert report["export"]["max_logit_diff"] <= 1e-4
    # no temporaries left (the lock files beside the output stay: removing a lock file races its next taker)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["gpt2", "run", "saes"]
    with pytest.raises(RecipeError, match="already exists; choose another --out"):
        run_recipe(recipe, out, progress=False)
