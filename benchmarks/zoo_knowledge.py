"""What the zoo models know: forget/retain accuracy and ROUGE-L recall, model vs retain oracle.

    python benchmarks/zoo_knowledge.py            # all zoo models (tofu-mini needs ../shared/data/tofu)
    python benchmarks/zoo_knowledge.py secrets

Prints a markdown table with each model's build time on this machine (from its zoo card), and
writes it to benchmarks/results/zoo_knowledge.json (benchmarks/tables.py; `make tables` puts it
into benchmarks/zoo.md).
"""

from __future__ import annotations

import sys

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.evaluation import evaluate_knowledge
from sae_unlearn.models.zoo import ZOO, load_zoo_model, zoo_card, zoo_split

COLUMNS = [
    "model",
    "role",
    "forget accuracy",
    "retain accuracy",
    "forget ROUGE-L recall",
    "retain ROUGE-L recall",
    "build s",
]


def main(names: list[str]) -> None:
    print(
        "| model | role | forget accuracy | retain accuracy | forget ROUGE-L recall | retain ROUGE-L recall | build s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for name in names:
        split = zoo_split(name)
        for oracle in (False, True):
            model = load_zoo_model(name, oracle=oracle, device="cpu", progress=False)
            f = evaluate_knowledge(model, split.forget)
            r = evaluate_knowledge(model, split.retain)
            acc = (lambda x: f"{x.exact_match:.3f}") if split.forget[0].target else (lambda x: "n/a")
            build_s = zoo_card(name, oracle)["build_seconds"]
            print(
                f"| {name} | {'oracle' if oracle else 'model'} | {acc(f)} | {acc(r)} | "
                f"{f.mean_rouge_l_recall:.3f} | {r.mean_rouge_l_recall:.3f} | {build_s} |"
            )
            exact = bool(split.forget[0].target)  # tofu-mini's answers are free text: no exact match
            role = "oracle" if oracle else "model"
            knows = [f.exact_match, r.exact_match] if exact else ["n/a", "n/a"]
            rows.append([name, role, *knows, f.mean_rouge_l_recall, r.mean_rouge_l_recall, build_s])
    formats = [None, None, ".3f", ".3f", ".3f", ".3f", ".1f"]
    record("zoo_knowledge", {"knowledge": table(COLUMNS, formats, rows)})


if __name__ == "__main__":
    main(sys.argv[1:] or list(ZOO))
