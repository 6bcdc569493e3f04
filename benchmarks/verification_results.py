"""Is it gone or only hidden? Original, retain oracle, RMU and SSPU verified side by side in one run.

    python benchmarks/verification_results.py [--models secrets tofu-mini secrets-gpt2 secrets-gemma2]
        [--methods rmu sspu ...] [--settings benchmarks/method_settings.json|none] [--out DIR]

For each zoo model: the SAE stage and unlearning with every registered method (``--methods``;
default all; R²MU's only on a reasoning model, where a second table gives the trace metrics)
exactly as in ``benchmarks/unlearning_results.py`` (the swept settings of
``method_settings.json``, config defaults where absent), then
``sae_unlearn.verification.verify`` (default ``VerifyConfig``) of every variant against the
retain oracle's measurements (computed once). Prints the markdown tables and writes them to
``benchmarks/results/verification_results.json`` (``--results NAME`` for another name; ``make
tables`` puts them into the benchmark pages); with ``--out`` every report is saved (JSON,
Markdown, figures).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.zoo import ZOO
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.unlearning import METHODS, get_method, method_label, method_runs_on
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

SWEPT = Path(__file__).with_name("method_settings.json")


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO))
    parser.add_argument("--out", default=None, help="folder for the full reports (optional)")
    parser.add_argument(
        "--methods", nargs="+", default=["rmu", "sspu"] + [m for m in METHODS if m not in ("rmu", "sspu")]
    )
    parser.add_argument(
        "--settings", default=str(SWEPT), help="JSON of settings per model and method; 'none': defaults"
    )
    parser.add_argument("--results", default="verification_results", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    for m in args.methods:
        get_method(m)
    swept = json.loads(Path(args.settings).read_text()) if args.settings != "none" else {}
    config = VerifyConfig()
    print("verify config:", config.to_dict())
    rows = []
    for name in args.models:
        data, vdata = pipeline_data(name), verification_data(name)
        model_dir, oracle_dir = zoo_model_path(name, progress=False), zoo_model_path(name, oracle=True, progress=False)
        model = load_model(model_dir, device="cpu")
        oracle = load_model(oracle_dir, device="cpu")
        t = time.perf_counter()
        oracle_m = measure(oracle, vdata, config, reference=model)  # reference: direction ablation's original
        print(f"{name}: oracle measured in {time.perf_counter() - t:.1f}s")
        variants = {"original": model, "retain oracle": oracle_m}  # the oracle's measurement, not measured again
        with tempfile.TemporaryDirectory() as tmp:
            stage = sae_stage(model, data, tmp, SAEFitConfig(device="cpu"), n_latents=64, progress=False)
        for method in [m for m in args.methods if method_runs_on(m, name)]:  # R²MU: reasoning models only
            chosen = swept.get(name, {}).get(method, {})
            variants[method_label(method)], _ = unlearn(
                method, model_dir, data, stage, chosen, device="cpu", progress=False
            )
            iv = variants[method_label(method)].intervention
            if iv is not None:  # what the weight-free method chose (DSG: its classifier's reach)
                facts = {k: v for k, v in iv.info.items() if not isinstance(v, list)}
                print(f"{name} {method}: {iv.rule} on {len(iv.latents)} latents, threshold {iv.threshold}, {facts}")
        for variant in list(variants):
            m = variants.pop(variant)  # one unlearned model in memory at a time after this
            t = time.perf_counter()
            report = verify(m, vdata, oracle_m, config, name=f"{name} {variant}", reference=model)
            del m
            print(f"{name} {variant}: {report.verdict} ({time.perf_counter() - t:.1f}s)")
            for reason in report.reasons:
                print("   ", reason)
            if args.out:
                report.save(Path(args.out) / name / variant.replace(" ", "_"))
            rows.append((name, variant, report))

    print(
        "\n| model | variant | forget quality | model utility | forget acc | "
        "relearn 0 / 10 / 50 steps (worst of grid) | "
        "probe acc (oracle) | int4 forget acc | direction ablation | hook removed | degenerate | distinguisher | "
        "verdict (evidence) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, variant, r in rows:
        s = r.summary()
        relearn = " / ".join(f"{s['relearn'][k]:.3f}" for k in sorted(s["relearn"], key=int))
        probe = r.oracle.attacks["probe"].details["accuracy"] if "probe" in r.oracle.attacks else None
        probe_txt = "n/a" if s["probe_accuracy"] is None else f"{s['probe_accuracy']:.3f} ({probe:.3f})"
        int4 = s["quantization"].get("int4", float("nan"))
        print(
            f"| {name} | {variant} | {s['forget_quality']:.3g} | {s['model_utility']:.3f} | "
            f"{s['forget_accuracy']:.3f} | {relearn} | {probe_txt} | {int4:.3f} | "
            f"{_fmt(s['direction_ablation_max'])} | {_fmt(s['intervention_removed'])} | "
            f"{_fmt(s['degenerate_share'])} | {_fmt(s['distinguisher_accuracy'])} | {s['verdict']} ({s['evidence']}) |"
        )
    reasoning = [(n, v, r.summary()) for n, v, r in rows if "trace_leak_rate" in r.summary()]
    if reasoning:
        print(
            "\n| model | variant | forget trace leak (oracle) | forget answer with trigger | "
            "retain trace correct | verdict |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, variant, s in reasoning:
            print(
                f"| {name} | {variant} | {s['trace_leak_rate']:.3f} ({s['oracle_trace_leak_rate']:.3f}) | "
                f"{s['forget_answer_with_trigger']:.3f} | {s['retain_trace_correct']:.3f} | {s['verdict']} |"
            )
    record(args.results, results_tables(rows, reasoning))


def results_tables(rows: list, reasoning: list) -> dict:
    """The printed tables as :func:`tables.record` takes them (the same columns, numbers as numbers;
    a value not measured is ``null``, shown as the printed ``—``)."""
    columns = ["model", "variant", "forget quality", "model utility", "forget acc"]
    columns += ["relearn 0 / 10 / 50 steps (worst of grid)", "probe acc (oracle)", "int4 forget acc"]
    columns += ["direction ablation", "hook removed", "degenerate", "distinguisher", "verdict (evidence)"]
    cells = []
    for name, variant, r in rows:
        s = r.summary()
        relearn = " / ".join(f"{s['relearn'][k]:.3f}" for k in sorted(s["relearn"], key=int))
        probe = r.oracle.attacks["probe"].details["accuracy"] if "probe" in r.oracle.attacks else None
        probe_txt = "n/a" if s["probe_accuracy"] is None else f"{s['probe_accuracy']:.3f} ({probe:.3f})"
        cells.append(
            [name, variant, s["forget_quality"], s["model_utility"], s["forget_accuracy"], relearn, probe_txt]
            + [s["quantization"].get("int4"), s["direction_ablation_max"], s["intervention_removed"]]
            + [s["degenerate_share"], s["distinguisher_accuracy"], f"{s['verdict']} ({s['evidence']})"]
        )
    formats = [None, None, ".3g", ".3f", ".3f", None, None] + [".3f"] * 5 + [None]
    out = {"verification": table(columns, formats, cells)}
    if reasoning:
        columns = ["model", "variant", "forget trace leak (oracle)", "forget answer with trigger"]
        columns += ["retain trace correct", "verdict"]
        out["traces"] = table(
            columns,
            [None, None, None, ".3f", ".3f", None],
            [
                [name, variant, f"{s['trace_leak_rate']:.3f} ({s['oracle_trace_leak_rate']:.3f})"]
                + [s["forget_answer_with_trigger"], s["retain_trace_correct"], s["verdict"]]
                for name, variant, s in reasoning
            ],
        )
    return out


if __name__ == "__main__":
    main()
