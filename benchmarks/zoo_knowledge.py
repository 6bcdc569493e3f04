"""What the zoo models know: forget/retain accuracy and ROUGE-L recall, model vs retain oracle.

    python benchmarks/zoo_knowledge.py            # all zoo models (tofu-mini needs ../shared/data/tofu)
    python benchmarks/zoo_knowledge.py secrets

Prints a markdown table (pasted into benchmarks/README.md) with each model's build time on
this machine (from its zoo card).
"""

from __future__ import annotations

import sys

from sae_unlearn.evaluation import evaluate_knowledge
from sae_unlearn.models.zoo import ZOO, load_zoo_model, zoo_card, zoo_split


def main(names: list[str]) -> None:
    print(
        "| model | role | forget accuracy | retain accuracy | forget ROUGE-L recall | retain ROUGE-L recall | build s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
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


if __name__ == "__main__":
    main(sys.argv[1:] or list(ZOO))
