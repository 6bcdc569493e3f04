"""SSPU and RMU on the secrets model: constrained updates, safety of the run, export."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from sae_unlearn.export import CARD_JSON, CARD_MD, export_model
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import unlearn
from sae_unlearn.unlearning import SSPU, SSPUConfig, UnlearningConfig
from sae_unlearn.utils import hash_directory

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("projection", ["gradient", "update"])
def test_sspu_changes_only_chosen_matrices_inside_the_relevant_subspace(stage, projection):
    data, st = stage
    src = zoo_model_path("secrets")
    before_disk = hash_directory(src)
    model, result = unlearn(
        "sspu", src, data, st, {"steps": 20, "projection": projection}, device="cpu", progress=False
    )
    assert result.extra["out_of_subspace_residual"] < 1e-5
    assert result.extra["update_norm"] > 0
    assert result.history[-1]["forget_loss"] < result.history[0]["forget_loss"]
    original = load_model(src, device="cpu")
    new, old = model.hf_named_parameters(), original.hf_named_parameters()
    changed = {n for n in old if not torch.equal(new[n], old[n])}
    assert changed == set(result.params) and len(result.params) == 3
    assert all("mlp.down_proj" in n for n in changed)
    assert hash_directory(src) == before_disk  # the source on disk is never modified


def test_rmu_runs_with_the_same_budget(stage):
    data, st = stage
    model, result = unlearn("rmu", zoo_model_path("secrets"), data, st, {"steps": 10}, device="cpu", progress=False)
    assert result.method == "rmu" and len(result.history) == 10 and result.params
    assert result.config["hook"] == st.selection.hook


def test_non_finite_loss_stops_and_restores(stage):
    data, st = stage
    model = load_model(zoo_model_path("secrets"), device="cpu")
    before = {n: p.clone() for n, p in model.hf_state_dict().items()}
    cfg = SSPUConfig(hook=st.selection.hook, steps=5, steering_coef=1e38)  # squared, it overflows float32
    with pytest.raises(FloatingPointError, match="non-finite loss at step 0"):
        SSPU(st.subspaces.relevant, st.subspaces.irrelevant, cfg).apply(
            model, data.forget_texts, data.retain_texts, progress=False
        )
    after = model.hf_state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_guard_stops_a_collapse_and_restores(stage):
    data, st = stage
    model = load_model(zoo_model_path("secrets"), device="cpu")
    from sae_unlearn.unlearning import RMU
    from sae_unlearn.unlearning.base import make_batches, retain_lm_loss

    cfg = UnlearningConfig(hook=st.selection.hook, steps=60, lr=0.2, alpha=0.0, guard_every=5, guard_tolerance=0.05)
    result = RMU(cfg).apply(model, data.forget_texts, data.retain_texts, progress=False)
    assert result.stopped_early and "restored" in result.stopped_early
    assert len(result.history) < 60
    guard = make_batches(model, data.retain_texts, cfg.batch_size, cfg.seed + 1)[:4]
    start = load_model(zoo_model_path("secrets"), device="cpu")
    assert retain_lm_loss(model, guard) <= retain_lm_loss(start, guard) + cfg.guard_tolerance + 1e-6


def test_bad_parameters_are_named(stage):
    data, st = stage
    model = load_model(zoo_model_path("secrets"), device="cpu")
    cfg = SSPUConfig(hook=st.selection.hook, steps=1, params=["model.layers.1.mlp.up_proj.weight"])
    with pytest.raises(ValueError, match="up_proj.weight has shape \\(512, 128\\).*write to the residual stream"):
        SSPU(st.subspaces.relevant, st.subspaces.irrelevant, cfg).apply(
            model, data.forget_texts, data.retain_texts, progress=False
        )
    with pytest.raises(KeyError, match="'model.layers.9.mlp.down_proj.weight' not in the model"):
        cfg = SSPUConfig(hook=st.selection.hook, steps=1, params=["model.layers.9.mlp.down_proj.weight"])
        SSPU(st.subspaces.relevant, st.subspaces.irrelevant, cfg).apply(
            model, data.forget_texts, data.retain_texts, progress=False
        )


def test_export_reloads_with_the_same_logits_and_card(stage, tmp_path):
    data, st = stage
    model, result = unlearn("sspu", zoo_model_path("secrets"), data, st, {"steps": 5}, device="cpu", progress=False)
    card = export_model(model, tmp_path / "out", {"method": "sspu", "hyperparameters": result.config, "seed": 0})
    assert card["max_logit_diff"] < 1e-4 and len(card["source_hash"]) == 16
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = model.tokenize(data.split.forget[0].prompt).input_ids
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model.logits(ids), rtol=0, atol=1e-4)
    saved = json.loads((tmp_path / "out" / CARD_JSON).read_text())
    assert saved["method"] == "sspu" and saved["weights_hash"] == card["weights_hash"]
    assert "Unlearning card" in (tmp_path / "out" / CARD_MD).read_text()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_model(model, tmp_path / "out", {"method": "sspu"})
    with pytest.raises(ValueError, match="refusing to export to .*: it is the source model"):
        export_model(model, model.source, {"method": "sspu"}, overwrite=True)


def test_interrupted_export_leaves_no_folder(secrets_model, tmp_path, monkeypatch):
    import sae_unlearn.export as exp

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(exp, "_card_markdown", crash)
    with pytest.raises(KeyboardInterrupt):
        export_model(secrets_model, tmp_path / "half", {"method": "none"})
    # nothing but the empty lock file beside the target (filelock's; released, no process holds it)
    assert not (tmp_path / "half").exists() and [p.name for p in tmp_path.iterdir()] == [".half.lock"]
