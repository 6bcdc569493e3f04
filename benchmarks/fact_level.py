"""Forgetting a person or a secret: the whole-person split of ``secrets`` against the fact-level one
(every person's passcode), each with the selection scored on every token or only where the fact is
recalled.

    python benchmarks/fact_level.py [--models secrets secrets-passcodes] [--positions all answer]
        [--methods sspu] [--json FILE]

For each split (zoo entry) and each ``positions`` of the SAE stage (:func:`sae_unlearn.pipeline.sae_stage`:
``all`` = every forget token against every retain token; ``answer`` = the last token of each forget
question against that of each retain question), on the same model (``secrets-passcodes`` shares
``secrets``'s weights):

- which latents the selection chooses: its layer, and for the top 16 relevant latents the share of
  their activation on forget text that falls on the subjects' name tokens and on the forgotten
  values' tokens (the rest is on the question and statement words);
- each method's forget and retain accuracy (the retain set of the passcode split is every person's
  other facts: whether the people's retained facts survive), and its verdict under the default
  ``VerifyConfig`` against that split's own oracle (worst relearning of the grid, probe).

Besides the printed table, ``benchmarks/results/fact_level.json`` gets the rows in the layout of
benchmarks/removal.md's table (``--results NAME`` for another name; ``make tables`` puts it there).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.atomic import write_json_atomic
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import knowledge_metrics, pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig, encode_batched
from sae_unlearn.unlearning import method_label
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

SWEPT = Path(__file__).with_name("method_settings.json")


def where_latents_fire(stage, model, data, top: int = 16) -> dict:
    """Mean share of the top relevant latents' forget activation on name tokens and on value tokens,
    and the tokens that carry most of it."""
    hook = stage.selection.hook
    z = encode_batched(stage.fit.saes[hook], stage.store[hook])
    forget = stage.forget_mask
    names = {w for s in data.split.forget_subjects for w in s.split()}
    values = {q.target for q in data.split.forget if q.target}
    pieces = [model.tokenizer.decode([int(t)]).strip() for t in stage.store.token_ids]
    # a piece of 3+ characters inside a name word (shorter pieces, "is" or "an", occur inside names too)
    is_name = torch.tensor([len(p) >= 3 and any(p in n for n in names) for p in pieces])
    is_value = torch.tensor(
        [(len(p) >= 3 or p.isdigit()) and not is_name[i] and any(p in v for v in values) for i, p in enumerate(pieces)]
    )
    shares: dict[str, list[float]] = {"name": [], "value": []}
    by_token: dict[str, float] = {}
    for i in stage.selection.latents.relevant[:top].tolist():
        mass = z[:, i].clamp_min(0)
        total = mass[forget].sum().clamp_min(1e-9)
        shares["name"].append(float(mass[forget & is_name].sum() / total))
        shares["value"].append(float(mass[forget & is_value].sum() / total))
        for r in torch.nonzero(forget & (mass > 0)).flatten().tolist():
            by_token[pieces[r]] = by_token.get(pieces[r], 0.0) + float(mass[r] / total) / top
    out: dict = {k: sum(v) / len(v) for k, v in shares.items()}
    out["top_tokens"] = sorted(by_token.items(), key=lambda kv: -kv[1])[:5]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["secrets", "secrets-passcodes"])
    parser.add_argument("--positions", nargs="+", default=["all", "answer"], choices=["all", "answer"])
    parser.add_argument("--methods", nargs="+", default=["sspu"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--results", default="fact_level", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    swept = json.loads(SWEPT.read_text())
    config = VerifyConfig()
    rows: list[dict] = []
    for name in args.models:
        data, vdata = pipeline_data(name), verification_data(name)
        model_dir = zoo_model_path(name, progress=False)
        original = load_model(model_dir, device="cpu")
        oracle = load_model(zoo_model_path(name, oracle=True, progress=False), device="cpu")
        oracle_m = measure(oracle, vdata, config, reference=original)
        base = knowledge_metrics(original, data.split)
        print(
            f"{name}: original forget {base['forget_accuracy']:.3f} retain {base['retain_accuracy']:.3f}; "
            f"oracle forget {oracle_m.unit.forget_accuracy:.3f}"
        )
        for positions in args.positions:
            with tempfile.TemporaryDirectory() as tmp:
                stage = sae_stage(
                    original, data, tmp, SAEFitConfig(device="cpu"), n_latents=64, progress=False, positions=positions
                )
                fire = where_latents_fire(stage, original, data)
            for method in args.methods:
                settings = swept.get("secrets", {}).get(method, {})
                model, _ = unlearn(method, model_dir, data, stage, settings, device="cpu", progress=False)
                k = knowledge_metrics(model, data.split)
                report = verify(model, vdata, oracle_m, config, name=f"{name} {positions} {method}", reference=original)
                s = report.summary()
                row = {
                    "model": name,
                    "positions": positions,
                    "method": method,
                    "layer": stage.selection.layer,
                    "relevant": stage.selection.latents.relevant[:16].tolist(),
                    "name_share": fire["name"],
                    "value_share": fire["value"],
                    "top_tokens": fire["top_tokens"],
                    "forget_accuracy": k["forget_accuracy"],
                    "retain_accuracy": k["retain_accuracy"],
                    "original_retain_accuracy": base["retain_accuracy"],
                    "relearn_worst": max(v for kk, v in s["relearn"].items() if int(kk) > 0),
                    "oracle_relearn_worst": max(v for kk, v in oracle_m.relearn.items() if int(kk) > 0),
                    "probe": s["probe_accuracy"],
                    "degenerate": s["degenerate_share"],
                    "verdict": s["verdict"],
                }
                rows.append(row)
                if args.json:
                    write_json_atomic(Path(args.json), rows)
                print(row)
                del model
    print(
        "\n| split | selection scored on | layer | top-16 activation on names | on values | most on | forget acc | "
        "retain acc (original) | worst relearn (oracle) | probe | verdict |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        tokens = ", ".join(f"`{t}` {w:.2f}" for t, w in r["top_tokens"][:3])
        print(
            f"| {r['model']} {r['method']} | {r['positions']} tokens | {r['layer']} | {r['name_share']:.2f} | "
            f"{r['value_share']:.2f} | {tokens} | {r['forget_accuracy']:.3f} | "
            f"{r['retain_accuracy']:.3f} ({r['original_retain_accuracy']:.3f}) | "
            f"{r['relearn_worst']:.3f} ({r['oracle_relearn_worst']:.3f}) | {r['probe']:.3f} | {r['verdict']} |"
        )
    columns = ["split", "selection on", "method", "layer", "on names", "on values", "most on", "forget acc"]
    columns += ["retain acc", "worst relearn (oracle)", "probe", "degenerate", "verdict"]
    cells = [
        [r["model"], r["positions"], method_label(r["method"]), r["layer"], r["name_share"], r["value_share"]]
        + [", ".join(f"`{t}` {w:.2f}" for t, w in r["top_tokens"][:3]), r["forget_accuracy"], r["retain_accuracy"]]
        + [f"{r['relearn_worst']:.3f} ({r['oracle_relearn_worst']:.3f})", r["probe"], r["degenerate"], r["verdict"]]
        for r in rows
    ]
    formats = [None, None, None, None, ".2f", ".2f", None, ".3f", ".3f", None, ".3f", ".3f", None]
    align = ["left"] * 3 + ["right"] * 3 + ["left"] + ["right"] * 5 + ["left"]
    record(args.results, {"fact_level": table(columns, formats, cells, align)})


if __name__ == "__main__":
    main()
