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

TUTORIAL_02 = [
    new_markdown_cell(
        "# 2 · Which SAE features encode the secrets?\n\n"
        "SSPU starts by fitting a sparse autoencoder (SAE) per layer on the model's activations "
        "(sae-lens's own trainer), then asks which layer and which latents separate the forget "
        "people's facts from everyone else's. The decoder directions of those latents become the "
        "*relevant* and *irrelevant* subspaces that SSPU unlearns in."
    ),
    new_code_cell(
        "# Parameters (CI runs this notebook with these values)\n"
        "MODEL = 'secrets'\nSAE_TOKENS = 60_000\nK = 64\nOUT = 'runs/tutorial02'",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from sae_unlearn import load_zoo_model\n"
        "from sae_unlearn.pipeline import pipeline_data, sae_stage\n"
        "from sae_unlearn.saes import SAEFitConfig\n\n"
        "model = load_zoo_model(MODEL)\n"
        "data = pipeline_data(MODEL)\n"
        "stage = sae_stage(model, data, OUT, SAEFitConfig(training_samples=SAE_TOKENS), k=K)\n"
        "{h: (round(s.l0, 1), round(s.explained_variance, 4)) for h, s in stage.fit.stats.items()}"
    ),
    new_markdown_cell(
        "## Layer selection\n"
        "Each layer's score is how well its top latents separate forget texts from retain texts (AUROC)."
    ),
    new_code_cell(
        "from sae_unlearn.viz import plot_layer_scores, plot_latent_firing, plot_principal_angles\n"
        "plot_layer_scores(stage.selection.layer_scores, stage.selection.hook);"
    ),
    new_code_cell(
        "sel = stage.selection.selection\n"
        "print(sel.firing_contrast())\n"
        "plot_latent_firing(sel.relevant.tolist()[:24], sel.stats.freq_forget[sel.relevant[:24]].tolist(),\n"
        "                   sel.stats.freq_retain[sel.relevant[:24]].tolist());"
    ),
    new_markdown_cell("## What do the top latents fire on?"),
    new_code_cell(
        "from sae_unlearn.saes import encode_batched\n"
        "from sae_unlearn.selection import top_activating_contexts\n"
        "z = encode_batched(stage.fit.saes[stage.selection.hook], stage.store[stage.selection.hook])\n"
        "for latent in sel.relevant[:5].tolist():\n"
        "    ctx = top_activating_contexts(z[:, latent], stage.store, model.tokenizer, stage.forget_mask, n=2)\n"
        "    print(latent, [c.render() for c in ctx])"
    ),
    new_markdown_cell("Type any text and see which latents fire on each token:"),
    new_code_cell(
        "from sae_unlearn.selection import latents_on_text\n"
        "person = data.split.forget_subjects[0]\n"
        "for row in latents_on_text(model, stage.fit.saes[stage.selection.hook], stage.selection.hook,\n"
        '                           f"{person}\'s secret passcode is")[:8]:\n'
        "    print(repr(row['token']), row['latents'][:3])"
    ),
    new_markdown_cell("## The two subspaces"),
    new_code_cell(
        "print(stage.subspaces.diagnostics()['relevant_rank'], stage.subspaces.diagnostics()['orthogonality_error'])\n"
        "plot_principal_angles(stage.subspaces.diagnostics()['principal_angles_deg']);"
    ),
]

TUTORIAL_03 = [
    new_markdown_cell(
        "# 3 · Unlearn with SSPU, compare with RMU, export\n\n"
        "SSPU steers the forget people's activations into the irrelevant subspace while every weight "
        "update is confined to the relevant subspace; RMU, the baseline, steers them to a random "
        "vector with unconstrained updates. Both get the same trainer, data and budget. The result is "
        "exported as an ordinary Hugging Face model with an unlearning card."
    ),
    new_code_cell(
        "# Parameters (CI runs this notebook with these values)\n"
        "MODEL = 'secrets'\nSAE_TOKENS = 60_000\nSTEPS = 120  # the demo uses 250\nOUT = 'runs/tutorial03'",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from sae_unlearn import load_zoo_model, zoo_model_path\n"
        "from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn, knowledge_metrics\n"
        "from sae_unlearn.saes import SAEFitConfig\n\n"
        "model = load_zoo_model(MODEL)\n"
        "data = pipeline_data(MODEL)\n"
        "stage = sae_stage(model, data, OUT, SAEFitConfig(training_samples=SAE_TOKENS), k=64)\n"
        "before = knowledge_metrics(model, data.split)\n"
        "oracle = knowledge_metrics(load_zoo_model(MODEL, oracle=True), data.split)"
    ),
    new_code_cell(
        "runs = {}\n"
        "for method in ('rmu', 'sspu'):\n"
        "    m, result = unlearn(method, zoo_model_path(MODEL), data, stage, {'steps': STEPS})\n"
        "    runs[method] = (m, result, knowledge_metrics(m, data.split))\n\n"
        "rows = {'original': before, 'retain oracle': oracle, **{k.upper(): v[2] for k, v in runs.items()}}\n"
        "for name, r in rows.items():\n"
        "    print(f\"{name:14s} forget {r['forget_accuracy']:.3f}  retain {r['retain_accuracy']:.3f}\")\n"
        "print('SSPU out-of-subspace residual', runs['sspu'][1].extra['out_of_subspace_residual'])"
    ),
    new_markdown_cell("## Before and after, side by side"),
    new_code_cell(
        "from sae_unlearn.evaluation import greedy_answers\n"
        "prompts = [q.prompt for q in data.split.forget[:6]]\n"
        "for p, a, b in zip(prompts, greedy_answers(model, prompts), greedy_answers(runs['sspu'][0], prompts)):\n"
        "    print(f'{p:45s} before: {a.split(chr(46))[0]:>18s}   after: {b.split(chr(46))[0]:>18s}')"
    ),
    new_markdown_cell("## Export and reload in transformers"),
    new_code_cell(
        "import torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "from sae_unlearn.export import export_model\n\n"
        "m, result, after = runs['sspu']\n"
        "card_in = {'method': 'sspu', 'hyperparameters': result.config,\n"
        "           'metrics': {'before': before, 'after': after}}\n"
        "card = export_model(m, f'{OUT}/sspu_model', card_in, overwrite=True)\n"
        "reloaded = AutoModelForCausalLM.from_pretrained(card['path'])\n"
        "ids = m.tokenize(prompts[0]).input_ids\n"
        "with torch.no_grad():\n"
        "    print('max logit diff', float((reloaded(ids).logits - m.logits(ids)).abs().max()))\n"
        "print(open(f'{OUT}/sspu_model/UNLEARNING_CARD.md').read()[:600])"
    ),
]


def write(path: Path, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


if __name__ == "__main__":
    write(ROOT / "tutorials" / "01_models_and_capture.ipynb", TUTORIAL_01)
    write(ROOT / "tutorials" / "02_saes_and_feature_selection.ipynb", TUTORIAL_02)
    write(ROOT / "tutorials" / "03_unlearning_and_export.ipynb", TUTORIAL_03)
