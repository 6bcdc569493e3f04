"""Original vs retain oracle vs every registered unlearning method, side by side in one run.

    python benchmarks/unlearning_results.py [--models secrets tofu-mini secrets-gpt2 secrets-gemma2]
        [--methods rmu sspu ...] [--timing-steps 40] [--settings benchmarks/method_settings.json|none]

For each zoo model: the SAE stage (capture, SAEs, selection, subspaces), then each method (default:
every registered one) with the same trainer, data, parameters and budget, each on a fresh copy, at
the settings ``benchmarks/method_sweep.py`` chose for that model (``method_settings.json``; a
method or model it has not swept runs at its config defaults, ``--settings none`` for all).
Weight-free methods (SAE interventions) train nothing: they have no step time. Reports forget/retain accuracy
(secrets: exact attribute in the greedy answer; tofu-mini: share of answers with ROUGE-L recall
≥ 0.5), ROUGE-L recall and mean normalised answer probability; then each method's optimisation
step time over RMU's, timed in alternating runs.
A third table gives the share of forget and retain questions answered with a refusal
(:mod:`sae_unlearn.evaluation.refusal`; what IdkDPO and UniErase teach). On a reasoning model
(``secrets-reasoning``) a fourth table gives the trace metrics
(:mod:`sae_unlearn.evaluation.reasoning`); methods that need a reasoning model (R²MU) run only there.
Prints markdown tables and writes them to ``benchmarks/results/unlearning_results.json``
(``--results NAME`` for another name; ``make tables`` puts them into the benchmark pages).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.data.reasoning import ReasoningCorpus
from sae_unlearn.data.refusals import load_refusals
from sae_unlearn.evaluation.reasoning import reasoning_metrics
from sae_unlearn.evaluation.refusal import refusal_rate
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.zoo import ZOO, is_reasoning_model
from sae_unlearn.pipeline import knowledge_metrics, pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.unlearning import METHODS, GradientMethod, get_method, method_label, method_runs_on

SWEPT = Path(__file__).with_name("method_settings.json")
"""The settings benchmarks/method_sweep.py chose per model and method (config defaults where absent)."""

TRACE_COLS = [
    "forget_trace_leak_rate",
    "forget_answer_with_trigger",
    "forget_answer_without_trigger",
    "retain_trace_correct",
    "retain_answer_with_trigger",
    "retain_answer_without_trigger",
]

COLS = [
    "forget_accuracy",
    "retain_accuracy",
    "forget_rouge_l_recall",
    "retain_rouge_l_recall",
    "forget_answer_prob",
    "retain_answer_prob",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ZOO))
    parser.add_argument("--timing-steps", type=int, default=40, help="steps per timing run (3 alternating runs each)")
    parser.add_argument(
        "--methods", nargs="+", default=["rmu", "sspu"] + [m for m in METHODS if m not in ("rmu", "sspu")]
    )
    parser.add_argument(
        "--settings",
        default=str(SWEPT),
        help="JSON of settings per model and method (benchmarks/method_sweep.py --write); 'none': config defaults",
    )
    parser.add_argument("--results", default="unlearning_results", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    if "rmu" not in args.methods:
        parser.error("--methods must include rmu (step times are relative to it)")
    swept = json.loads(Path(args.settings).read_text()) if args.settings != "none" else {}
    for m in args.methods:
        print(f"{m} defaults:", get_method(m).config_class().to_dict())
    print("swept settings:", json.dumps(swept))
    rows, timing, traces, refused = [], {}, [], []
    for name in args.models:
        data = pipeline_data(name)
        model_dir, oracle_dir = zoo_model_path(name, progress=False), zoo_model_path(name, oracle=True, progress=False)
        model = load_model(model_dir, device="cpu")
        original = knowledge_metrics(model, data.split)
        oracle = load_model(oracle_dir, device="cpu")
        rows.append((name, "original", original, ""))
        rows.append((name, "retain oracle", knowledge_metrics(oracle, data.split), ""))
        rset = ReasoningCorpus().reasoning_set() if is_reasoning_model(name) else None
        prompts = {r: [q.prompt for q in getattr(data.split, r)] for r in ("forget", "retain")}
        refusals = load_refusals("auto", prompts["forget"])

        def refusal_row(variant: str, m, prompts=prompts, refusals=refusals, name=name) -> None:
            refused.append((name, variant, {r: refusal_rate(m, p, refusals) for r, p in prompts.items()}))

        refusal_row("original", model)
        refusal_row("retain oracle", oracle)
        if rset is not None:
            traces += [(name, "original", reasoning_metrics(model, rset))]
            traces += [(name, "retain oracle", reasoning_metrics(oracle, rset))]
        methods = [m for m in args.methods if method_runs_on(m, name)]
        with tempfile.TemporaryDirectory() as tmp:
            stage = sae_stage(model, data, tmp, SAEFitConfig(device="cpu"), n_latents=64, progress=False)
        note = f"layer {stage.selection.layer}, rank {stage.subspaces.relevant.rank}/{stage.subspaces.irrelevant.rank}"
        for method in methods:
            chosen = swept.get(name, {}).get(method, {})
            m, result = unlearn(method, model_dir, data, stage, chosen, device="cpu", progress=False)
            extra = f"residual {result.extra['out_of_subspace_residual']:.1e}" if method == "sspu" else ""
            extra += f" {json.dumps(chosen)}" if chosen else ""
            if result.stopped_early:
                extra += " (guard stopped)"
            if "parameters_changed_fraction" in result.extra:
                extra += (
                    f" params changed {100 * result.extra['parameters_changed_fraction']:.1f}%, {result.seconds:.0f}s"
                )
            rows.append((name, method_label(method), knowledge_metrics(m, data.split), f"{note} {extra}".strip()))
            refusal_row(method_label(method), m)
            if rset is not None:
                traces.append((name, method_label(method), reasoning_metrics(m, rset)))
        # interventions have no steps; UniErase's are one embedding row's, then a closed-form edit
        trained = [m for m in methods if issubclass(get_method(m), GradientMethod)]
        step: dict[str, list[float]] = {m: [] for m in trained}
        for r in range(3):
            for method in trained if r % 2 == 0 else trained[::-1]:
                _, result = unlearn(
                    method,
                    model_dir,
                    data,
                    stage,
                    swept.get(name, {}).get(method, {}) | {"steps": args.timing_steps, "guard_every": 0},
                    device="cpu",
                    progress=False,
                )
                step[method].append(result.mean_step_seconds)
        timing[name] = {k: statistics.median(v) for k, v in step.items()}

    print(
        "\n| model | variant | forget acc | retain acc | forget ROUGE-L | retain ROUGE-L | forget P(ans) | "
        "retain P(ans) | notes |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, variant, m, note in rows:
        print(f"| {name} | {variant} | " + " | ".join(f"{m[c]:.3f}" for c in COLS) + f" | {note} |")
    print(
        "\n| model | RMU s/step | " + " | ".join(f"{method_label(m)} / RMU" for m in args.methods if m != "rmu") + " |"
    )
    print("| --- | --- | " + " | ".join("---" for m in args.methods if m != "rmu") + " |")
    others = [m for m in args.methods if m != "rmu"]
    for name, t in timing.items():
        print(
            f"| {name} | {t['rmu']:.4f} | "
            + " | ".join(
                f"{t[m] / t['rmu']:.2f}"
                if m in t
                else (
                    "n/a (needs a reasoning model)"
                    if not method_runs_on(m, name)
                    else "no steps"
                    if not get_method(m).changes_weights
                    else "not comparable (notes)"
                )
                for m in others
            )
            + " |"
        )
    print("\n| model | variant | forget questions refused | retain questions refused |")
    print("| --- | --- | --- | --- |")
    for name, variant, r in refused:
        print(f"| {name} | {variant} | {r['forget']:.3f} | {r['retain']:.3f} |")
    if traces:
        print(
            "\n| model | variant | forget trace leak | forget answer with trigger | without | "
            "retain trace correct | retain answer with trigger | without |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, variant, r in traces:
            print(f"| {name} | {variant} | " + " | ".join(f"{r[c]:.3f}" for c in TRACE_COLS) + " |")
    record(args.results, results_tables(args.methods, rows, timing, refused, traces))


def results_tables(methods: list[str], rows: list, timing: dict, refused: list, traces: list) -> dict:
    """The printed tables as :func:`tables.record` takes them (the same columns, numbers as numbers)."""
    columns = [
        "model",
        "variant",
        "forget acc",
        "retain acc",
        "forget ROUGE-L",
        "retain ROUGE-L",
        "forget P(ans)",
        "retain P(ans)",
        "notes",
    ]
    out = {
        "knowledge": table(
            columns,
            [None, None] + [".3f"] * len(COLS) + [None],
            [[name, variant, *(m[c] for c in COLS), note] for name, variant, m, note in rows],
        )
    }
    others = [m for m in methods if m != "rmu"]

    def ratio(m: str, name: str, t: dict) -> float | str:
        if m in t:
            return t[m] / t["rmu"]
        if not method_runs_on(m, name):
            return "n/a (needs a reasoning model)"
        return "no steps" if not get_method(m).changes_weights else "not comparable (notes)"

    out["step_time"] = table(
        ["model", "RMU s/step", *(f"{method_label(m)} / RMU" for m in others)],
        [None, ".4f"] + [".2f"] * len(others),
        [[name, t["rmu"], *(ratio(m, name, t) for m in others)] for name, t in timing.items()],
    )
    out["refusals"] = table(
        ["model", "variant", "forget questions refused", "retain questions refused"],
        [None, None, ".3f", ".3f"],
        [[name, variant, r["forget"], r["retain"]] for name, variant, r in refused],
    )
    if traces:
        out["traces"] = table(
            ["model", "variant", "forget trace leak", "forget answer with trigger", "without"]
            + ["retain trace correct", "retain answer with trigger", "without"],
            [None, None] + [".3f"] * len(TRACE_COLS),
            [[name, variant, *(r[c] for c in TRACE_COLS)] for name, variant, r in traces],
        )
    return out


if __name__ == "__main__":
    main()
