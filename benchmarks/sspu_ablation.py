"""SSPU, examined: the subspace size k, orthogonal vs overlapping subspaces, and what is projected.

    python benchmarks/sspu_ablation.py [--models secrets] [--ks 4 8 16 32 64] [--json FILE]

For each zoo model: the SAE stage once (64 + 64 latents), then SSPU with ``n_relevant = n_irrelevant
= k`` (the k most / least forget-related latents' directions), ``orthogonal`` off and on (the
irrelevant basis orthogonalised against the relevant one), and ``projection`` of the gradient or
of the accumulated update; every run at the SSPU settings of ``method_settings.json`` (learning
rate) and verified with the default ``VerifyConfig`` against the retain oracle (worst case of the
relearning grid, probe). Prints the table and writes it to ``benchmarks/results/sspu_ablation.json``
(``--results NAME`` for another name; ``make tables`` puts it into benchmarks/removal.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.atomic import write_json_atomic
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

SWEPT = Path(__file__).with_name("method_settings.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["secrets"])
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--json", default=None)
    parser.add_argument("--results", default="sspu_ablation", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    swept = json.loads(SWEPT.read_text())
    config = VerifyConfig()
    rows = []
    for name in args.models:
        data, vdata = pipeline_data(name), verification_data(name)
        model_dir = zoo_model_path(name, progress=False)
        original = load_model(model_dir, device="cpu")
        oracle_m = measure(
            load_model(zoo_model_path(name, oracle=True), device="cpu"), vdata, config, reference=original
        )
        with tempfile.TemporaryDirectory() as tmp:
            stage = sae_stage(original, data, tmp, SAEFitConfig(device="cpu"), n_latents=64, progress=False)
        for k, orthogonal, projection in itertools.product(args.ks, (False, True), ("gradient", "update")):
            settings = {
                **swept.get(name, {}).get("sspu", {}),
                "n_relevant": k,
                "n_irrelevant": k,
                "orthogonal": orthogonal,
                "projection": projection,
            }
            model, result = unlearn("sspu", model_dir, data, stage, settings, device="cpu", progress=False)
            report = verify(model, vdata, oracle_m, config, name=f"{name} sspu k={k}", reference=original)
            s, x = report.summary(), result.extra
            row = {
                "model": name,
                "k": k,
                "orthogonal": orthogonal,
                "projection": projection,
                "relevant_share": x["relevant_share"],
                "min_angle_deg": x["min_principal_angle_deg"],
                "forget_accuracy": s["forget_accuracy"],
                "retain_accuracy": s["retain_accuracy"],
                "relearn_worst": max(v for kk, v in s["relearn"].items() if int(kk) > 0),
                "probe": s["probe_accuracy"],
                "direction_ablation": s["direction_ablation_max"],
                "degenerate": s["degenerate_share"],
                "verdict": s["verdict"],
                "stopped_early": result.stopped_early is not None,
            }
            rows.append(row)
            print(row)
    if args.json:
        write_json_atomic(Path(args.json), rows)
    print(
        "\n| model | k | orthogonal | projection | relevant share | min angle ° | forget acc | retain acc | "
        "worst relearn | probe | direction ablation | degenerate | verdict |"
    )
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        angle = "—" if r["min_angle_deg"] is None else f"{r['min_angle_deg']:.1f}"
        print(
            f"| {r['model']} | {r['k']} | {'yes' if r['orthogonal'] else 'no'} | {r['projection']} | "
            f"{r['relevant_share']:.3f} | {angle} | {r['forget_accuracy']:.3f} | {r['retain_accuracy']:.3f} | "
            f"{r['relearn_worst']:.3f} | {r['probe']:.3f} | {r['direction_ablation']:.3f} | {r['degenerate']:.3f} | "
            f"{r['verdict']}{' (guard stopped)' if r['stopped_early'] else ''} |"
        )
    columns = ["model", "k", "orthogonal", "projection", "relevant share", "min angle °", "forget acc", "retain acc"]
    columns += ["worst relearn", "probe", "direction ablation", "degenerate", "verdict"]
    cells = [
        [r["model"], r["k"], "yes" if r["orthogonal"] else "no", r["projection"], r["relevant_share"]]
        + [r["min_angle_deg"], r["forget_accuracy"], r["retain_accuracy"], r["relearn_worst"], r["probe"]]
        + [
            r["direction_ablation"],
            r["degenerate"],
            f"{r['verdict']}{' (guard stopped)' if r['stopped_early'] else ''}",
        ]
        for r in rows
    ]
    formats = [None, None, None, None, ".3f", ".1f"] + [".3f"] * 6 + [None]
    align = ["left", "right", "left", "left"] + ["right"] * 8 + ["left"]
    record(args.results, {"ablation": table(columns, formats, cells, align)})


if __name__ == "__main__":
    main()
