"""The main job writes the report the README promises, on the secrets model and on its
architecture twins (GPT-2: Conv1D weights, tied embeddings; Gemma-2: sandwich norms, soft-capping),
each with the same report keys and the same targets; on secrets it also runs a method registered
from a test file (tests/toy_method.py), as a user's own method would be."""

import json
import sys
from pathlib import Path

import pytest

from sae_unlearn.__main__ import main
from tests.shared_saes import shared_saes
from tests.toy_method import toy_method_registered

pytestmark = pytest.mark.integration
MODELS = ["secrets", "secrets-gpt2", "secrets-gemma2"]
KEYS = Path(__file__).with_name("demo_report_keys.json")
"""Every key path of the demo's report.json (hook names collapsed): the same on each model."""


def _keys(d: dict, prefix: str = "") -> set[str]:
    """Every key path of a report, with hook names collapsed (the chosen layer differs by model)."""
    out = set()
    for k, v in d.items():
        path = f"{prefix}.{'<hook>' if str(k).startswith('blocks.') else k}"
        out.add(path)
        if isinstance(v, dict):
            out |= _keys(v, path)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_demo_writes_report_on_secrets_and_its_twins(tmp_path, capsys, model):
    """The same report keys and the same targets on each model (one test per model, so the test
    workers run them side by side)."""
    if model == "secrets":  # a user's method beside the built-in ones: listed, unlearned, verified
        with toy_method_registered() as toy:
            report = _check_demo(tmp_path, capsys, model, extra_methods=[toy])
        assert report["config"]["methods"] == ["rmu", "sspu", toy]
        assert report["unlearning"][toy]["step_time_over_rmu"] > 0
        assert report["verification"][toy]["verdict"] in ("removed", "suppressed", "not forgotten", "inconclusive")
        assert (tmp_path / "verification" / toy / "verification.json").is_file()
        for section in ("unlearning", "verification"):  # the keys below are the built-in methods' only
            del report[section][toy]
    else:
        report = _check_demo(tmp_path, capsys, model)
    keys = _keys(report)
    expected = set(json.loads(KEYS.read_text()))
    assert keys == expected, (
        f"{model}: the report's keys differ from {KEYS.name}: new {sorted(keys - expected)}, missing "
        f"{sorted(expected - keys)}. If the report changed on purpose, rewrite it: "
        "python tests/integration/test_demo.py OUT/report.json"
    )


def _check_demo(tmp_path, capsys, model: str, extra_methods: list[str] | None = None) -> dict:
    # the default: one relearning run instead of the 18-run grid (the grid's worst case is tested in
    # test_verification.py)
    # at the demo's own settings on every model: with SAEs fitted on 60k tokens instead of 200k, SSPU on
    # secrets-gemma2 forgets only down to 0.25 (oracle 0.04), so the twins cannot be run cheaper
    with shared_saes(f"demo-{model}", tmp_path):
        methods = ["--methods", "rmu", "sspu", *extra_methods] if extra_methods else []
        assert main(["demo", "--out", str(tmp_path), "--model", model, "--no-progress", *methods]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    from sae_unlearn.demo import DemoReport

    typed = DemoReport.load(tmp_path)  # the saved report reads back as the typed report, section by section
    assert typed.to_dict() == report and typed == report and typed["unlearning"] is typed.unlearning
    assert "export" in typed and list(typed) == list(report) and typed.get("nope") is None
    with pytest.raises(KeyError, match="the demo report's sections are config, environment, model"):
        typed["nope"]
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
    assert len(sel["relevant_latents"]) == 64 and len(sel["irrelevant_latents"]) == 64
    assert sel["relevant_latents"][0]["top_contexts"]
    sub = report["subspace"]
    assert sub["relevant_rank"] >= 1 and sub["irrelevant_rank"] >= 1 and sub["orthogonality_error"] < 1e-5
    assert all((tmp_path / f"{n}.png").is_file() for n in ("layer_scores", "latent_firing", "principal_angles"))
    u, m, o = report["unlearning"], report["model"], report["oracle"]
    # SSPU forgets down to (near) the oracle's level and keeps >= 95% of the original's retain accuracy
    assert u["sspu"]["forget_accuracy"] <= o["forget_accuracy"] + 0.1
    assert u["sspu"]["retain_accuracy"] >= 0.95 * m["retain_accuracy"]
    assert u["sspu"]["out_of_subspace_residual"] < 1e-5
    # ... and so does RMU, the baseline, with the same budget
    assert u["rmu"]["forget_accuracy"] <= o["forget_accuracy"] + 0.1
    assert u["rmu"]["retain_accuracy"] >= 0.95 * m["retain_accuracy"]
    assert u["sspu"]["forget_answer_prob"] < m["forget_answer_prob"]
    exp = report["export"]
    assert exp["max_logit_diff"] < 1e-4 and (tmp_path / "sspu_model" / "model.safetensors").is_file()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(exp["path"])
    for method in ("rmu", "sspu"):
        v = report["verification"][method]
        assert v["verdict"] in ("removed", "suppressed", "not forgotten")
        assert 0 <= v["forget_quality"] <= 1 and 0 <= v["relearn_forget_accuracy"] <= 1
        assert 0 <= v["probe_accuracy"] <= 1
        # report.json carries the headline numbers of the full report saved beside it
        saved = json.loads((tmp_path / "verification" / method / "verification.json").read_text())
        for key in ("verdict", "forget_quality", "relearn_forget_accuracy", "probe_accuracy"):
            assert v[key] == saved["summary"][key], key
        assert v["relearn_forget_accuracy"] == saved["model"]["attacks"]["relearn"]["details"]["worst"]["50"]
        assert v["evidence"] in ("conclusive", "too thin to tell") and 0 <= v["distinguisher_accuracy"] <= 1
    # the exported model's card names its data, so `verify` needs no --data / --oracle
    assert json.loads((tmp_path / "sspu_model" / "unlearning_card.json").read_text())["data"] == model
    out = capsys.readouterr().out
    assert "forget accuracy" in out and "verification" in out
    assert "one full fine-tuning run at lr 1e-3 (quick; --verify-grid runs the 18-run grid)" in out
    assert report["verification"]["config"]["attacks"]["relearn"]["lrs"] == [1e-3]
    return report


def test_demo_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--model", "nope"])


def test_the_demo_relearns_once_by_default_and_over_the_grid_when_asked(tmp_path):
    from sae_unlearn.attacks.relearn import RelearnAttackConfig
    from sae_unlearn.demo import DemoConfig, verify_config

    quick = verify_config(DemoConfig(out=str(tmp_path))).attacks["relearn"]
    grid = verify_config(DemoConfig(out=str(tmp_path), verify_grid=True)).attacks["relearn"]
    assert (quick.lrs, quick.seeds, quick.modes) == ((1e-3,), (0,), ("full",))
    assert grid == RelearnAttackConfig() and len(grid.lrs) * len(grid.seeds) * len(grid.modes) == 18


def test_demo_names_an_unknown_method_and_refuses_the_zoo_cache_as_out(tmp_path, capsys):
    from sae_unlearn.demo import DemoConfig
    from sae_unlearn.utils import cache_dir

    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path), "--methods", "rmu", "sspu", "nope"])
    err = capsys.readouterr().err
    assert "methods ['nope'] are not registered; choose from" in err and "Traceback" not in err
    for out in (cache_dir() / "zoo", cache_dir() / "zoo" / "secrets-whatever"):
        with pytest.raises(ValueError, match="lies inside the zoo's model cache"):
            DemoConfig(out=str(out))
    assert not (tmp_path / "saes").exists()


HOLDER = r"""
import sys, time
from sae_unlearn.atomic import output_lock
with output_lock(sys.argv[1], "demo"):
    print("READY", flush=True)
    time.sleep(120)
"""


def test_a_second_demo_into_a_busy_folder_fails_at_once_and_a_run_never_keeps_an_old_report(
    tmp_path, capsys, monkeypatch
):
    """Two demos writing one --out would mix their files (a report of steps 5 beside a model of
    steps 7): the second fails at once; and a run first drops a previous run's report.json."""
    import subprocess
    import sys
    import time

    from sae_unlearn import demo

    out = tmp_path / "demo_out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "READY"
        t0 = time.time()
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--out", str(out), "--no-progress"])
        assert exc.value.code == 2 and time.time() - t0 < 5
        assert "is being written by another process" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(timeout=30)
    (out / "report.json").write_text('{"config": {"steps": 5}}')

    def stop(*args, **kwargs):
        raise RuntimeError("stopped after the lock")

    monkeypatch.setattr(demo, "zoo_model_path", stop)
    with pytest.raises(RuntimeError, match="stopped after the lock"):
        demo.run_demo(demo.DemoConfig(out=str(out), progress=False))
    assert not (out / "report.json").exists()


if __name__ == "__main__":  # rewrite demo_report_keys.json from a demo's report.json
    KEYS.write_text(json.dumps(sorted(_keys(json.loads(Path(sys.argv[1]).read_text()))), indent=1) + "\n")
