"""A small hyper-parameter sweep of every registered method, chosen by a rule stated in advance.

    python benchmarks/method_sweep.py [--models secrets tofu-mini] [--methods ...]
        [--write benchmarks/method_settings.json]

For each zoo model: the SAE stage as in ``benchmarks/unlearning_results.py``, then every method
at each point of its grid (``GRIDS``: the gradient methods' learning rate at ½, 1 and 2 × the
default; the SAE interventions' number of latents and multiplier), each on a fresh copy with the
same data and budget. The rule, fixed before any run (issue 12): among the points whose retain
accuracy is at least ``0.95 ×`` the original's, the lowest forget accuracy, ties broken by the
lower forget answer probability; if no point keeps retain accuracy, the point with the highest
retain accuracy (flagged). Prints every point and the choice; ``--write`` saves the chosen
settings per model and method, which ``unlearning_results.py`` and ``verification_results.py``
read (``--settings``; ``--write`` replaces the swept methods' entries and keeps the others).

On a reasoning model (``secrets-reasoning``, issue 13) the trace metrics are measured at every
point too, and the rule, fixed before its run, is about traces: among the points keeping both
retain accuracy and retain trace correctness at ``0.95 ×`` the original's, the lowest forget trace
leak rate, ties broken by forget accuracy, then forget P(ans); if none keeps both, the point with
the highest retain trace correctness (flagged). R²MU's methods also sweep ``reasoning_weight``
(1 and 4) at each learning rate. Methods that need a reasoning model are skipped elsewhere.

The table of every point is also written to ``benchmarks/results/method_sweep.json`` (``--results
NAME`` for another name; without trace metrics, the two trace columns are left out);
``make tables`` puts it into the benchmark pages.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from settings_file import read_settings, write_settings  # this script's folder is on sys.path
from tables import record, table

from sae_unlearn.atomic import output_lock
from sae_unlearn.data.reasoning import ReasoningCorpus
from sae_unlearn.evaluation.reasoning import reasoning_metrics
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.zoo import is_reasoning_model
from sae_unlearn.pipeline import knowledge_metrics, pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.unlearning import METHODS, get_method, method_label, method_runs_on, why_method_cannot_run

RETAIN_KEEP = 0.95
"""A point qualifies when its retain accuracy is at least this share of the original's."""

INTERVENTION_GRIDS: dict[str, list[dict]] = {
    "clamp_zero": [{"n_latents": n} for n in (16, 64)],
    "clamp_static": [{"n_latents": n, "multiplier": c} for n in (16, 64) for c in (1.0, 2.0, 5.0)],
    "clamp_conditional": [{"n_latents": n, "multiplier": c} for n in (16, 64) for c in (2.0, 5.0, 10.0)],
    "dsg": [{"n_latents": n, "multiplier": c} for n in (16, 64) for c in (5.0, 10.0, 20.0)],
    # UniErase trains no learning-rate-driven update of the model: its grid is the edit's null space
    "unierase": [{"null_space_energy": e} for e in (1e-4, 1e-3, 1e-2)],
}


def grid(method: str) -> list[dict]:
    """The sweep points of a registered method (a gradient method: its learning rate ×½, ×1, ×2)."""
    if method in INTERVENTION_GRIDS:
        return INTERVENTION_GRIDS[method]
    cls = get_method(method)
    lr = getattr(cls.config_class(), "lr", None)
    if lr is None:
        return [{}]
    lrs = [{"lr": float(f"{lr * f:.3g}")} for f in (0.5, 1.0, 2.0)]
    return [p | {"reasoning_weight": w} for p in lrs for w in (1.0, 4.0)] if cls.reasoning else lrs


def choose(points: list[tuple[dict, dict]], original_retain: float) -> tuple[dict, dict, bool]:
    """The rule: lowest forget accuracy (then forget P(ans)) among points keeping retain accuracy."""
    ok = [p for p in points if p[1]["retain_accuracy"] >= RETAIN_KEEP * original_retain]
    if ok:
        s, m = min(ok, key=lambda p: (p[1]["forget_accuracy"], p[1]["forget_answer_prob"]))
        return s, m, True
    s, m = max(points, key=lambda p: (p[1]["retain_accuracy"], -p[1]["forget_accuracy"]))
    return s, m, False


def choose_by_traces(points: list[tuple[dict, dict]], original: dict) -> tuple[dict, dict, bool]:
    """The reasoning model's rule: lowest forget trace leak among points keeping retain accuracy and
    retain trace correctness (then forget accuracy, then forget P(ans))."""
    ok = [
        p
        for p in points
        if p[1]["retain_accuracy"] >= RETAIN_KEEP * original["retain_accuracy"]
        and p[1]["retain_trace_correct"] >= RETAIN_KEEP * original["retain_trace_correct"]
    ]
    if ok:
        s, m = min(
            ok, key=lambda p: (p[1]["forget_trace_leak_rate"], p[1]["forget_accuracy"], p[1]["forget_answer_prob"])
        )
        return s, m, True
    s, m = max(points, key=lambda p: (p[1]["retain_trace_correct"], p[1]["retain_accuracy"]))
    return s, m, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["secrets", "tofu-mini"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--write", default=None, help="JSON file for the chosen settings")
    parser.add_argument("--results", default="method_sweep", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    for m in args.methods:
        get_method(m)
    if args.write is None:
        _, points = sweep(args)
        record(args.results, {"sweep": sweep_table(points)})
        return
    write = Path(args.write)
    read_settings(write)  # a damaged settings file fails now, not after the sweep
    # one sweep at a time rewrites the file (held for the whole run: two would lose each other's entries)
    with output_lock(write, "method sweep", folder=False):
        chosen, points = sweep(args)
        write_settings(write, chosen)
    print(f"wrote {args.write}")
    record(args.results, {"sweep": sweep_table(points)})


def sweep(args: argparse.Namespace) -> tuple[dict[str, dict[str, dict]], list[list]]:
    """Sweep every method of ``args.methods`` on every model of ``args.models``; print the points
    and return the chosen settings per model and method, and the printed table's rows (for
    :func:`sweep_table`)."""
    chosen: dict[str, dict[str, dict]] = {}
    points_table: list[list] = []
    lines = [
        "| model | method | setting | forget acc | retain acc | forget P(ans) | retain P(ans) | "
        "trace leak | retain trace correct | chosen |"
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        t0 = time.perf_counter()
        data = pipeline_data(name)
        model_dir = zoo_model_path(name, progress=False)
        model = load_model(model_dir, device="cpu")
        reasons = is_reasoning_model(name)
        rset = ReasoningCorpus().reasoning_set() if reasons else None

        def measured(m, rset=rset, split=data.split) -> dict:
            k = knowledge_metrics(m, split)
            if rset is not None:
                k |= {key: v for key, v in reasoning_metrics(m, rset).items() if key != "items"}
            return k

        original = measured(model)
        with tempfile.TemporaryDirectory() as tmp:
            stage = sae_stage(model, data, tmp, SAEFitConfig(device="cpu"), n_latents=64, progress=False)
        chosen[name] = {}
        for method in args.methods:
            if not method_runs_on(method, name):
                print(f"{name}: {method} skipped ({why_method_cannot_run(method, name)})")
                continue
            points = []
            for settings in grid(method):
                m, result = unlearn(method, model_dir, data, stage, settings, device="cpu", progress=False)
                k = measured(m)
                if result.stopped_early:
                    k = k | {"guard": True}
                points.append((settings, k))
                print(name, method, settings, {c: round(v, 3) for c, v in k.items() if "rouge" not in c}, flush=True)
            best, _, qualifies = (
                choose_by_traces(points, original) if reasons else choose(points, original["retain_accuracy"])
            )
            chosen[name][method] = best
            for s, k in points:
                mark = ("**yes**" if qualifies else "**yes** (none keeps retain)") if s is best else ""
                guard = " (guard stopped)" if k.get("guard") else ""
                lines.append(
                    f"| {name} | {method_label(method)} | {json.dumps(s) if s else 'defaults'}{guard} | "
                    f"{k['forget_accuracy']:.3f} | {k['retain_accuracy']:.3f} | {k['forget_answer_prob']:.3f} | "
                    f"{k['retain_answer_prob']:.3f} | {_opt(k, 'forget_trace_leak_rate')} | "
                    f"{_opt(k, 'retain_trace_correct')} | {mark} |"
                )
                points_table.append(
                    [name, method_label(method), f"{json.dumps(s) if s else 'defaults'}{guard}"]
                    + [k[c] for c in ("forget_accuracy", "retain_accuracy", "forget_answer_prob", "retain_answer_prob")]
                    + [k.get("forget_trace_leak_rate"), k.get("retain_trace_correct"), mark]
                )
        print(f"{name}: original {json.dumps({c: round(v, 3) for c, v in original.items()})}")
        print(f"{name}: {time.perf_counter() - t0:.0f}s")
    print("\n" + "\n".join(lines))
    print("\nchosen:", json.dumps(chosen, indent=1))
    return chosen, points_table


def sweep_table(points: list[list]) -> dict:
    """The printed table of :func:`sweep`'s points for :func:`tables.record` (numbers as numbers; the
    trace columns only where a point has trace metrics, ``null`` where it has none)."""
    columns = ["model", "method", "setting", "forget acc", "retain acc", "forget P(ans)", "retain P(ans)"]
    columns += ["trace leak", "retain trace correct", "chosen"]
    formats = [None, None, None] + [".3f"] * 6 + [None]
    if all(p[7] is None and p[8] is None for p in points):
        return table(columns[:7] + columns[9:], formats[:7] + formats[9:], [p[:7] + p[9:] for p in points])
    return table(columns, formats, points)


def _opt(k: dict, key: str) -> str:
    return f"{k[key]:.3f}" if key in k else "—"


if __name__ == "__main__":
    main()
