"""Removed or suppressed? Every method against the strengthened attacks, with its compute, in one run.

    python benchmarks/removal_results.py [--models secrets tofu-mini] [--variants NAME ...]
        [--settings benchmarks/method_settings.json|none] [--json benchmarks/removal_results.json]

For each zoo model: the SAE stage (64 + 64 latents), then every variant below (a registered method
with settings; the swept settings of ``method_settings.json`` where the method has them, config
defaults otherwise), each on a fresh copy, verified with the default ``VerifyConfig`` (relearning
over 3 learning rates × 3 seeds × full/LoRA, worst case; direction ablation against the original;
prompts, probe, logit lens, int8/int4; naturalness) against the retain oracle, measured once.

Compute is counted in forward-equivalent token passes (``sae_unlearn.unlearning.compute``: a
forward-and-backward token is 3, a forward-only token 1), for the method itself (SAE fitting and
selection, shared by the SAE methods, are not counted), and set beside training the retain oracle
from scratch (3 × epochs × its training tokens).

The goal (issue 14): verdict *removed*, retain accuracy ≥ 0.95 × the original's, model utility
within 0.02 of the original's, natural answers (degenerate share within 0.05 of the oracle's,
distinguisher accuracy ≤ 0.6), compute ≤ 25 % of retraining. The table says how far each is; it
is also written to ``benchmarks/results/removal_results.json`` (``--results NAME`` for another
name; ``make tables`` puts it into benchmarks/removal.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.atomic import write_json_atomic
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.zoo import ZOO, zoo_data
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.unlearning.compute import training_token_passes
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

SWEPT = Path(__file__).with_name("method_settings.json")

VARIANTS: dict[str, tuple[str, dict]] = {
    "RMU": ("rmu", {}),
    "SSPU": ("sspu", {}),
    "SSPU orthogonal": ("sspu", {"orthogonal": True}),
    "SSPU mean ablation": ("sspu", {"target": "mean_ablation"}),
    "SSPU (layers)": ("sspu_layers", {}),
    "SSPU (layers) mean ablation": ("sspu_layers", {"target": "mean_ablation", "lr": 2e-2}),
    "SSPU (layers, MLP+attention)": ("sspu_layers", {"writers": ["mlp", "attn"]}),
    "GradDiff": ("grad_diff", {}),
    "NPO": ("npo", {}),
    "SimNPO": ("simnpo", {}),
    "IdkDPO": ("idk_dpo", {}),
    "TAR (RMU)": ("tar", {}),
    "SSPU+TAR": ("sspu_tar", {}),
    "SAM-RMU": ("sam_rmu", {}),
    "SSPU+SAM": ("sspu_sam", {}),
    "UNDO (RMU, global)": ("undo", {}),
    "UNDO (SSPU, subspace)": ("undo", {"teacher": "sspu", "perturb": "subspace"}),
    "UNDO (SSPU layers, global)": ("undo", {"teacher": "sspu_layers"}),
    "UNDO (SSPU layers, subspace)": ("undo", {"teacher": "sspu_layers", "perturb": "subspace"}),
    "UNDO (SSPU layers, global, 1500 distillation steps)": ("undo", {"teacher": "sspu_layers", "distill_steps": 1500}),
}


def oracle_compute(name: str, tokenizer) -> int:
    """Forward-equivalent token passes of training the retain oracle from scratch."""
    examples = zoo_data(name).oracle_examples
    tokens = [len(tokenizer(p + c)["input_ids"]) + 1 for p, c in examples]  # + the closing EOS
    return training_token_passes(tokens, ZOO[name].train.epochs)


def goal(row: dict) -> dict[str, bool]:
    """Which parts of the goal a row meets."""
    return {
        "removed": row["verdict"] == "removed",
        "retain": row["retain_ratio"] >= 0.95,
        "utility": abs(row["utility_delta"]) <= 0.02,
        "natural": row["degenerate_gap"] <= 0.05 and (row["distinguisher"] or 0.0) <= 0.6,
        "compute": row["compute_ratio"] <= 0.25,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["secrets", "tofu-mini"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--settings", default=str(SWEPT), help="JSON of settings per model and method; 'none'")
    parser.add_argument("--json", default=None, help="write every row here")
    parser.add_argument("--results", default="removal_results", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    swept = json.loads(Path(args.settings).read_text()) if args.settings != "none" else {}
    config = VerifyConfig()
    rows: list[dict] = []
    for name in args.models:
        data, vdata = pipeline_data(name), verification_data(name)
        model_dir = zoo_model_path(name, progress=False)
        original = load_model(model_dir, device="cpu")
        oracle = load_model(zoo_model_path(name, oracle=True, progress=False), device="cpu")
        retrain = oracle_compute(name, original.tokenizer)
        t = time.perf_counter()
        oracle_m = measure(oracle, vdata, config, reference=original)
        base = measure(original, vdata, VerifyConfig(skip=tuple(config.attacks), naturalness=None))
        print(f"{name}: oracle measured in {time.perf_counter() - t:.1f}s; retraining = {retrain:.3g} token passes")
        with tempfile.TemporaryDirectory() as tmp:
            stage = sae_stage(original, data, tmp, SAEFitConfig(device="cpu"), n_latents=64, progress=False)
        for label in args.variants:
            method, extra = VARIANTS[label]
            settings = {**swept.get(name, {}).get(method, {}), **extra}
            t = time.perf_counter()
            model, result = unlearn(method, model_dir, data, stage, settings, device="cpu", progress=False)
            unlearn_s = time.perf_counter() - t
            report = verify(model, vdata, oracle_m, config, name=f"{name} {label}", reference=original)
            del model
            s = report.summary()
            row = {
                "model": name,
                "variant": label,
                "method": method,
                "settings": settings,
                "compute_ratio": result.extra.get("token_passes", 0) / retrain,
                "retain_ratio": s["retain_accuracy"] / base.control.retain_accuracy,
                "utility_delta": s["model_utility"] - base.control.model_utility,
                "forget_accuracy": s["forget_accuracy"],
                "relearn_worst": max(v for k, v in s["relearn"].items() if int(k) > 0),
                "oracle_relearn_worst": max(v for k, v in oracle_m.relearn.items() if int(k) > 0),
                "probe": s["probe_accuracy"],
                "direction_ablation": s["direction_ablation_max"],
                "logit_lens": s["logit_lens_max_top1"],
                "degenerate": s["degenerate_share"],
                "degenerate_gap": (s["degenerate_share"] or 0.0) - (s["oracle_degenerate_share"] or 0.0),
                "distinguisher": s["distinguisher_accuracy"],
                "forget_quality": s["forget_quality"],
                "verdict": s["verdict"],
                "evidence": s["evidence"],
                "recovering": [c.name for c in report.checks if c.recovered],
                "stopped_early": result.stopped_early,
                "unlearn_seconds": unlearn_s,
                "extra": {k: v for k, v in result.extra.items() if isinstance(v, int | float | str)},
            }
            row["goal"] = goal(row)
            rows.append(row)
            if args.json:  # after every variant: a long run that is stopped keeps what it measured
                write_json_atomic(Path(args.json), rows)
            missed = [k for k, v in row["goal"].items() if not v]
            print(f"{name} {label}: {row['verdict']} ({row['evidence']}); goal missed: {missed}")
        oprobe = oracle_m.attacks["probe"].details["accuracy"] if "probe" in oracle_m.attacks else None
        odegen = oracle_m.naturalness.degenerate_share if oracle_m.naturalness else None
        orelearn = max(v for k, v in oracle_m.relearn.items() if int(k) > 0)
        print(f"{name} oracle: relearn worst {orelearn:.3f}, probe {_fmt(oprobe)}, degenerate {_fmt(odegen)}")
    print(
        "\n| model | method | compute / retraining | retain / original | utility Δ | worst relearn (oracle) | "
        "probe | direction ablation | degenerate (Δ oracle) | distinguisher | verdict (evidence) | goal missed |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        missed = ", ".join(k for k, v in r["goal"].items() if not v) or "**none**"
        print(
            f"| {r['model']} | {r['variant']} | {r['compute_ratio']:.3f} | {r['retain_ratio']:.3f} | "
            f"{r['utility_delta']:+.3f} | {r['relearn_worst']:.3f} ({r['oracle_relearn_worst']:.3f}) | "
            f"{_fmt(r['probe'])} | {_fmt(r['direction_ablation'])} | "
            f"{_fmt(r['degenerate'])} ({r['degenerate_gap']:+.2f}) | "
            f"{_fmt(r['distinguisher'])} | {r['verdict']} ({r['evidence']}) | {missed} |"
        )
    record(args.results, {"removal": removal_table(rows)})


def removal_table(rows: list[dict]) -> dict:
    """The printed table for :func:`tables.record` (the same columns, numbers as numbers)."""
    columns = ["model", "method", "compute / retraining", "retain / original", "utility Δ", "worst relearn (oracle)"]
    columns += ["probe", "direction ablation", "degenerate (Δ oracle)", "distinguisher", "verdict (evidence)"]
    cells = []
    for r in rows:
        missed = ", ".join(k for k, v in r["goal"].items() if not v) or "**none**"
        cells.append(
            [r["model"], r["variant"], r["compute_ratio"], r["retain_ratio"], r["utility_delta"]]
            + [f"{r['relearn_worst']:.3f} ({r['oracle_relearn_worst']:.3f})", r["probe"], r["direction_ablation"]]
            + [f"{_fmt(r['degenerate'])} ({r['degenerate_gap']:+.2f})", r["distinguisher"]]
            + [f"{r['verdict']} ({r['evidence']})", missed]
        )
    formats = [None, None, ".3f", ".3f", "+.3f", None, ".3f", ".3f", None, ".3f", None, None]
    align = ["left"] * 2 + ["right"] * 8 + ["left"] * 2
    return table([*columns, "goal missed"], formats, cells, align)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
