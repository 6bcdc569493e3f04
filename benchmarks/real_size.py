"""The "Real size" tables: what each stage of a rehearsed recipe cost, and what the full recipe would.

    python benchmarks/real_size.py REPORT.json [REPORT.json ...]

Each ``REPORT.json`` is the ``report.json`` of ``python -m sae_unlearn recipe RECIPE --rehearse
... --out DIR`` (random weights at the real shape; see ``sae_unlearn/recipes/rehearsal.py``).
Printed, as markdown:

1. per rehearsal and stage: seconds, peak host RSS (MiB), that peak over the model's own bytes
   and over the model's plus the SAEs' bytes (the SAE stage holds every candidate SAE), tokens/s;
2. the full recipe projected from it: each stage's measured seconds scaled by how much more work
   the recipe's own settings give it (its questions for the evaluations, its texts for the SAE
   stage, its steps for unlearning (at the measured seconds per step, after the stage's setup),
   its epochs for ``[teach]``; load and export do not scale), tokens in proportion,
   on this machine, and a GPU lower bound by FLOP count: the projected tokens x 2 FLOPs per
   parameter (x 3 where weights are trained: forward and backward) at an assumed sustained rate
   (``--gpu-tflops``, default 300: about 30% of an H100's dense bfloat16 peak). An estimate, marked
   as one, until measured on a GPU: real runs at batch size 4 are bound by launch overheads and
   memory traffic as much as by FLOPs.

Both tables are also written to ``benchmarks/results/real_size.json`` (``--results NAME`` for
another name; ``make tables`` puts them into benchmarks/real_size.md).

The token counts per question and text are the rehearsal's (its generated questions and texts have
the recipe's lengths in characters, but not the real data's token counts); the numbers of
questions of the hub benchmarks a recipe names without ``max_items`` are their published sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from pathlib import Path

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
#: Questions in the hub benchmarks the recipes use whole (their test splits).
BENCHMARK_SIZES = {("cais/wmdp", "wmdp-cyber"): 1987, ("cais/wmdp", "wmdp-bio"): 1273, ("cais/mmlu", "all"): 14042}
#: Stages whose weights are trained (forward and backward: 3x the forward FLOPs).
TRAINED = {"teach", "unlearning"}


def _questions(source: dict) -> int:
    """The questions a recipe's ``[eval.*]`` section asks (``max_items``, else the benchmark's size)."""
    if source.get("max_items"):
        return int(source["max_items"])
    return BENCHMARK_SIZES.get((source.get("hub", ""), source.get("hub_config", "")), 0)


def _scales(report: dict) -> dict[str, float]:
    """How much more work each stage does in the full recipe than in this rehearsal."""
    recipe = tomllib.loads((RECIPES / f"{report['recipe']['name']}.toml").read_text())
    ran = report["recipe"]
    out = {"load": 1.0, "export": 1.0}
    asked = sum(_questions(s) for k, s in recipe.get("eval", {}).items() if isinstance(s, dict))
    done = sum(v for k, v in report["data"].items() if k.endswith("_questions"))
    out["eval_before"] = out["eval_after"] = asked / done if done and asked else 1.0
    real_texts = sum(recipe.get("data", {}).get(side, {}).get("max_texts", 0) for side in ("forget", "retain"))
    texts = report["data"]["n_forget_texts"] + report["data"]["n_retain_texts"]
    out["sae_stage"] = real_texts / texts if real_texts else 1.0  # a built-in corpus is used whole
    # the stage is its setup (frozen activations, the guard's first loss) plus its steps: only the steps scale
    # (the first step is a warm-up, left out of mean_step_seconds: a rehearsal of one step cannot be projected)
    un = report["unlearning"]
    seconds = report["stages"]["unlearning"]["seconds"]
    more = max(0, recipe.get("unlearning", {}).get("steps", 1) - un["steps_run"]) * (un["mean_step_seconds"] or 0.0)
    out["unlearning"] = (seconds + more) / seconds if un["mean_step_seconds"] else math.nan
    if "teach" in recipe:
        out["teach"] = recipe["teach"].get("epochs", 1) / max(1, ran.get("teach", {}).get("epochs", 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--gpu-tflops", type=float, default=300.0, help="assumed sustained GPU rate (TFLOP/s)")
    p.add_argument("--results", default="real_size", help="writes benchmarks/results/RESULTS.json")
    args = p.parse_args()
    stages_table = [
        "| rehearsal | stage | seconds | peak RSS MiB | x model bytes | x model + SAE bytes | tokens/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    projection = [
        "| recipe (dtype) | stage | work x rehearsal | CPU minutes here (projected) "
        "| GPU minutes, FLOP-count lower bound (estimate) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    stage_rows: list[list] = []  # the same rows, for the results file
    projection_rows: list[list] = []
    for path in args.reports:
        report = json.loads(path.read_text())
        model = report["model"]
        model_mib = model["bytes"] / 2**20
        sae_mib = sum(s["d_in"] * s["d_sae"] * 2 * 4 for s in report["saes"].values()) / 2**20  # W_enc, W_dec
        cuts = report["rehearsal"]["cuts"]
        name = f"{report['recipe']['name']} ({model['dtype']}, {model['n_layers']} blocks"
        name += (
            f", --steps {cuts['steps']} --texts {cuts['texts']})"
            if cuts.get("texts")
            else f", --steps {cuts['steps']})"
        )
        scales = _scales(report)
        total_cpu = total_gpu = 0.0
        if math.isnan(scales["unlearning"]):
            print(f"{path}: one unlearning step cannot be projected (rehearse with --steps 3); no projection.")
        for stage, cost in report["stages"].items():
            tps = cost.get("tokens_per_second")
            stages_table.append(
                f"| {name} | {stage} | {cost['seconds']:.1f} | {cost['peak_rss_mb']:.0f} | "
                f"{cost['peak_rss_mb'] / model_mib:.2f} | {cost['peak_rss_mb'] / (model_mib + sae_mib):.2f} | "
                f"{'' if tps is None else f'{tps:.0f}'} |"
            )
            ratios = [cost["peak_rss_mb"] / model_mib, cost["peak_rss_mb"] / (model_mib + sae_mib)]
            stage_rows.append([name, stage, cost["seconds"], cost["peak_rss_mb"], *ratios, "" if tps is None else tps])
            scale = scales.get(stage, 1.0)
            if math.isnan(scales["unlearning"]):
                continue
            cpu = cost["seconds"] * scale / 60
            flops = cost.get("tokens", 0) * scale * 2 * model["n_params"] * (3 if stage in TRAINED else 1)
            gpu = flops / (args.gpu_tflops * 1e12) / 60
            total_cpu, total_gpu = total_cpu + cpu, total_gpu + gpu
            projection.append(
                f"| {report['recipe']['name']} ({model['dtype']}) | {stage} | {scale:.1f} | {cpu:.1f} | {gpu:.2f} |"
            )
            projection_rows.append([f"{report['recipe']['name']} ({model['dtype']})", stage, scale, cpu, gpu])
        if math.isnan(scales["unlearning"]):
            continue
        projection.append(
            f"| {report['recipe']['name']} ({model['dtype']}) | **all** | | **{total_cpu:.0f}** | "
            f"**{math.ceil(total_gpu * 100) / 100:.2f}** |"
        )
        projection_rows.append(
            [
                f"{report['recipe']['name']} ({model['dtype']})",
                "**all**",
                "",
                f"**{total_cpu:.0f}**",
                f"**{math.ceil(total_gpu * 100) / 100:.2f}**",
            ]
        )
    print("\n".join(stages_table))
    print()
    print("\n".join(projection))
    columns = ["rehearsal", "stage", "seconds", "peak RSS MiB", "x model bytes", "x model + SAE bytes", "tokens/s"]
    stages = table(columns, [None, None, ".1f", ".0f", ".2f", ".2f", ".0f"], stage_rows, ["left"] * 2 + ["right"] * 5)
    columns = [
        "recipe (dtype)",
        "stage",
        "work x rehearsal",
        "CPU minutes here (projected)",
        "GPU minutes, FLOP-count lower bound (estimate)",
    ]
    projected = table(columns, [None, None, ".1f", ".1f", ".2f"], projection_rows, ["left"] * 2 + ["right"] * 3)
    record(
        args.results, {"stages": stages, "projection": projected}, notes=f"GPU estimate at {args.gpu_tflops} TFLOP/s"
    )


if __name__ == "__main__":
    main()
