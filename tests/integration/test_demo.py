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
    assert "forget accuracy" in capsys.readouterr().out


def test_demo_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--model", "nope"])
