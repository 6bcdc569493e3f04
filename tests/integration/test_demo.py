"""The main job writes the report the README promises."""

import json

import pytest

from sae_unlearn.__main__ import main

pytestmark = pytest.mark.integration


def test_demo_writes_report(tmp_path, capsys, secrets_model, secrets_oracle):
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["model"]["forget_accuracy"] >= 0.95 and report["model"]["retain_accuracy"] >= 0.95
    assert report["oracle"]["forget_accuracy"] <= 0.35 and report["oracle"]["retain_accuracy"] >= 0.95
    assert report["timing"]["total_s"] > 0
    hooks = report["capture"]["hooks"]
    assert hooks == [f"blocks.{l}.hook_resid_post" for l in range(4)]
    for role in ("forget", "retain"):
        assert set(report["capture"][role]["mean_norm"]) == set(hooks)
        assert all(v > 0 for v in report["capture"][role]["mean_norm"].values())
    assert (tmp_path / "capture_norms.png").stat().st_size > 1000
    for h in hooks:
        sae = report["sae"][h]
        assert sae["explained_variance"] >= 0.9 and sae["l0"] <= 32 and 0 <= sae["dead_fraction"] < 1
    sel = report["selection"]
    assert sel["layer"] in range(4) and set(sel["layer_scores"]) == set(hooks)
    assert len(sel["relevant_latents"]) == 32 and len(sel["irrelevant_latents"]) == 32
    assert sel["relevant_latents"][0]["top_contexts"]
    sub = report["subspace"]
    assert sub["relevant_rank"] >= 1 and sub["irrelevant_rank"] >= 1 and sub["orthogonality_error"] < 1e-5
    assert all((tmp_path / f"{n}.png").is_file() for n in ("layer_scores", "latent_firing", "principal_angles"))
    assert "forget accuracy" in capsys.readouterr().out


def test_demo_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--model", "nope"])
