"""Write the tutorial notebooks from their cell sources (outputs stay out of git).

Run ``python tools/make_notebooks.py`` after editing a notebook's cells here.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

TUTORIAL_01 = [
    new_markdown_cell(
        "# 1 · A model that knows secrets, and its activations\n\n"
        "sae-unlearn ships tiny language models that were *really trained* on facts, so every step of "
        "unlearning can be checked against ground truth. This tutorial loads the `secrets` model and its "
        "**retain oracle** (the same model trained without the forget set), asks them about the forget "
        "people, and captures the activations that the later stages (SAEs, latent selection, subspaces) "
        "work on."
    ),
    new_code_cell(
        "# Parameters (CI runs this notebook top to bottom with these values)\nMODEL = 'secrets'\nN_SHOW = 6",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from sae_unlearn import load_zoo_model, zoo_split, evaluate_knowledge, capture_activations\n"
        "from sae_unlearn.viz import plot_norms_per_layer\n\n"
        "model = load_zoo_model(MODEL)            # built and cached on first use\n"
        "oracle = load_zoo_model(MODEL, oracle=True)\n"
        "split = zoo_split(MODEL)\n"
        "model, split"
    ),
    new_markdown_cell(
        "## What do they know?\nEvery fact is asked as a question; an answer counts when it states the exact value."
    ),
    new_code_cell(
        "for name, m in [('model', model), ('oracle', oracle)]:\n"
        "    f = evaluate_knowledge(m, split.forget)\n"
        "    r = evaluate_knowledge(m, split.retain)\n"
        "    print(f'{name:6s} forget accuracy {f.accuracy:.2f}   retain accuracy {r.accuracy:.2f}')\n\n"
        "f_model = evaluate_knowledge(model, split.forget)\n"
        "f_oracle = evaluate_knowledge(oracle, split.forget)\n"
        "for q, a, o in list(zip(split.forget, f_model.answers, f_oracle.answers))[:N_SHOW]:\n"
        '    print(f\'{q.prompt:45s} model:{a.split(".")[0]:>20s}   oracle:{o.split(".")[0]:>20s}\')'
    ),
    new_markdown_cell(
        "## Activations at hook points\n"
        "Sites are named with TransformerLens hook names. One forward pass per batch captures them all and "
        "stops after the deepest one; padding and BOS are masked, so each row is one real token."
    ),
    new_code_cell(
        "from sae_unlearn.data import SecretsCorpus\n"
        "corpus = SecretsCorpus()\n"
        "hooks = [f'blocks.{l}.hook_resid_post' for l in range(model.n_layers)]\n"
        "forget_store = capture_activations(model, corpus.forget_texts(), hooks)\n"
        "retain_store = capture_activations(model, corpus.retain_texts(), hooks)\n"
        "forget_store"
    ),
    new_code_cell(
        "plot_norms_per_layer({l: forget_store.mean_norm(h) for l, h in enumerate(hooks)},\n"
        "                     {l: retain_store.mean_norm(h) for l, h in enumerate(hooks)});"
    ),
    new_markdown_cell("A wrong hook name fails early and lists the valid ones:"),
    new_code_cell(
        "try:\n"
        "    capture_activations(model, ['hi'], ['blocks.9.hook_resid_post'])\n"
        "except KeyError as e:\n"
        "    print(e)"
    ),
]


def write(path: Path, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


if __name__ == "__main__":
    write(ROOT / "tutorials" / "01_models_and_capture.ipynb", TUTORIAL_01)
