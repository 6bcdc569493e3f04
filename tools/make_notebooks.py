"""Write the tutorial notebooks from their cell sources (outputs stay out of git).

Run ``python tools/make_notebooks.py`` after editing a notebook's cells here.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from studies import STUDIES, VERIFY_SETUP  # beside this file (tools/ is on sys.path when run)

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
    new_markdown_cell(
        "Or explore interactively: switch between the per-layer view and the per-token norm histogram of any hook."
    ),
    new_code_cell(
        "import torch\n"
        "from sae_unlearn.capture import ActivationStore\n"
        "from sae_unlearn.widgets import CaptureExplorer\n"
        "both = capture_activations(model, corpus.forget_texts() + corpus.retain_texts(), hooks)\n"
        "CaptureExplorer(both, both.seq_index < len(corpus.forget_texts()))"
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
        "MODEL = 'secrets'\nSAE_TOKENS = 60_000\nK = 64\nOUT = None  # None: a shared cache folder, so later notebooks reuse the SAEs",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from sae_unlearn import load_zoo_model\n"
        "from sae_unlearn.pipeline import pipeline_data\n"
        "from sae_unlearn.saes import SAEFitConfig\n"
        "from sae_unlearn.utils import cache_dir\n"
        "from sae_unlearn.widgets import SAETrainingMonitor\n\n"
        "model = load_zoo_model(MODEL)\n"
        "data = pipeline_data(MODEL)\n"
        "monitor = SAETrainingMonitor()  # live curves while the SAEs train (empty if they are reused)\n"
        "display(monitor)"
    ),
    new_code_cell(
        "from sae_unlearn.capture import capture_activations\n"
        "from sae_unlearn.saes import fit_saes\n"
        "from sae_unlearn.selection import select_layer_and_latents\n"
        "from sae_unlearn.subspaces import build_subspaces\n"
        "out = OUT or cache_dir() / 'runs' / MODEL\n"
        "hooks = [f'blocks.{l}.hook_resid_post' for l in range(model.n_layers)]\n"
        "store = capture_activations(model, data.forget_texts + data.retain_texts, hooks, batch_size=64)\n"
        "forget_mask = store.seq_index < len(data.forget_texts)\n"
        "fit = fit_saes(store, hooks, SAEFitConfig(training_samples=SAE_TOKENS), out_dir=out, model_name=MODEL,\n"
        "               on_log=monitor, log_every=20)\n"
        "{h: (round(s.l0, 1), round(s.explained_variance, 4)) for h, s in fit.stats.items()}"
    ),
    new_markdown_cell(
        "## Layer selection\n"
        "Each layer's score is how well its top latents separate forget texts from retain texts (AUROC)."
    ),
    new_code_cell(
        "from sae_unlearn.widgets import LayerSelectionView\n"
        "result = select_layer_and_latents(fit.saes, store, forget_mask, k=K)\n"
        "LayerSelectionView(result)"
    ),
    new_code_cell(
        "from sae_unlearn.viz import plot_latent_firing\n"
        "sel = result.selection\n"
        "print(sel.firing_contrast())\n"
        "plot_latent_firing(sel.relevant.tolist()[:24], sel.stats.freq_forget[sel.relevant[:24]].tolist(),\n"
        "                   sel.stats.freq_retain[sel.relevant[:24]].tolist());"
    ),
    new_markdown_cell("## What do the top latents fire on?"),
    new_code_cell(
        "from sae_unlearn.saes import encode_batched\n"
        "from sae_unlearn.selection import top_activating_contexts\n"
        "z = encode_batched(fit.saes[result.hook], store[result.hook])\n"
        "for latent in sel.relevant[:5].tolist():\n"
        "    ctx = top_activating_contexts(z[:, latent], store, model.tokenizer, forget_mask, n=2)\n"
        "    print(latent, [c.render() for c in ctx])"
    ),
    new_markdown_cell(
        "The latent browser: pick a latent to see its activation histogram (forget vs retain), its score "
        "rank and its top contexts; type any text (a name, a secret) and press the button to see which "
        "latents fire on each token (`*` marks forget-relevant ones)."
    ),
    new_code_cell(
        "from sae_unlearn.widgets import LatentBrowser\n"
        "browser = LatentBrowser(model, fit.saes[result.hook], result.hook, store, forget_mask, sel.scores, sel.relevant)\n"
        "person = data.split.forget_subjects[0]\n"
        'browser.text.value = f"{person}\'s secret passcode is"\n'
        "browser.show_text()\n"
        "browser"
    ),
    new_markdown_cell("## The two subspaces\nMove the slider to build them from fewer latents."),
    new_code_cell(
        "from sae_unlearn.widgets import SubspaceInspector\n"
        "SubspaceInspector(fit.saes[result.hook].W_dec, sel.relevant.tolist(), sel.irrelevant.tolist())"
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
        "MODEL = 'secrets'\nSAE_TOKENS = 60_000\nSTEPS = 120  # the demo uses 250\nOUT = 'runs/tutorial03'\nSAE_DIR = None  # None: the shared cache folder",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from sae_unlearn import load_zoo_model, zoo_model_path\n"
        "from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn, knowledge_metrics\n"
        "from sae_unlearn.saes import SAEFitConfig\n\n"
        "model = load_zoo_model(MODEL)\n"
        "data = pipeline_data(MODEL)\n"
        "from sae_unlearn.utils import cache_dir\n"
        "stage = sae_stage(model, data, SAE_DIR or cache_dir() / 'runs' / MODEL, SAEFitConfig(training_samples=SAE_TOKENS), k=64)\n"
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
    new_markdown_cell(
        "## Watch a run\nThe unlearning monitor runs any registered method on a fresh copy and plots the "
        "losses and the forget/retain accuracy as it goes. Pick a method and a budget and press *Run*."
    ),
    new_code_cell(
        "from sae_unlearn.widgets import UnlearningMonitor\n"
        "monitor = UnlearningMonitor(zoo_model_path(MODEL), stage, data.forget_texts, data.retain_texts, data.split,\n"
        "                            {'steps': STEPS}, eval_every=max(1, STEPS // 4))\n"
        "monitor.run()  # what the Run button does\n"
        "monitor"
    ),
    new_markdown_cell("## Before and after, side by side\nSelect questions or type your own prompt."),
    new_code_cell(
        "from sae_unlearn.widgets import BeforeAfter\n"
        "prompts = [q.prompt for q in data.split.forget[:6]]\n"
        "BeforeAfter(model, runs['sspu'][0], data.split.forget + data.split.retain[:8])"
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
    new_markdown_cell("The same from a widget: choose the folder and press *Export*."),
    new_code_cell(
        "from sae_unlearn.widgets import ExportPanel\n"
        "panel = ExportPanel(m, card_in | {'data': MODEL}, f'{OUT}/sspu_model_widget')\n"
        "panel.overwrite.value = True\n"
        "panel.export()\n"
        "panel"
    ),
]

TUTORIAL_04 = [
    new_markdown_cell(
        "# 4 · Is it gone or only hidden? Verify the unlearned model\n\n"
        "Forget accuracy at zero says the model no longer *says* the secret. The verification report "
        "asks whether it is really gone, comparing the model with the retain oracle (never saw the "
        "forget set) under the same checks: TOFU's truth ratio and forget quality, retain utility, and "
        "attacks that try to bring the knowledge back — benign relearning, prompt attacks, a probe, the "
        "logit lens and 4-bit quantisation. Verdict: *removed*, *suppressed* or *not forgotten*."
    ),
    new_code_cell(
        "# Parameters (CI runs this notebook with these values)\n"
        "MODEL = 'secrets'\nSAE_TOKENS = 60_000\nSTEPS = 120\nRELEARN_STEPS = (0, 10, 50)\nPROBE_STEPS = 60\nSAE_DIR = None",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        VERIFY_SETUP
        + "stage = sae_stage(model, data, SAE_DIR or cache_dir() / 'runs' / MODEL, SAEFitConfig(training_samples=SAE_TOKENS), k=64)\n"
        "sspu_model, _ = unlearn('sspu', zoo_model_path(MODEL), data, stage, {'steps': STEPS})"
    ),
    new_markdown_cell(
        "Relearning fine-tunes on *other* facts about the forget people (job, pet, birth year) and "
        "asks for the held-out ones (passcode, city, employer):"
    ),
    new_code_cell(
        "vdata = verification_data(MODEL)\n"
        "print(len(vdata.relearn_texts), 'relearning texts, e.g.', vdata.relearn_texts[:2])\n"
        "print(len(vdata.relearn_eval), 'held-out facts, e.g.', [q.prompt for q in vdata.relearn_eval[:2]])\n"
        "config = VerifyConfig(relearn_steps=RELEARN_STEPS, probe_steps=PROBE_STEPS)\n"
        "oracle_evidence = measure(oracle, vdata, config)  # measured once, reused for every model"
    ),
    new_code_cell("report = verify(sspu_model, vdata, oracle_evidence, config, name='SSPU')\nreport"),
    new_markdown_cell("The interactive view: verdict, every check against the oracle, and the figures."),
    new_code_cell("from sae_unlearn.widgets import VerificationView\nVerificationView(report)"),
    new_markdown_cell(
        "The same from the command line, on any saved model (here the zoo model itself, which has not "
        "forgotten anything):\n\n```\npython -m sae_unlearn verify MODEL_DIR [--oracle DIR] [--data secrets]\n```"
    ),
    new_code_cell(
        "report.save('runs/tutorial04')\nimport json\njson.load(open('runs/tutorial04/verification.json'))['summary']"
    ),
    new_markdown_cell(
        "## Ship it with its evidence\nExport the unlearned model with the verdict in its card; it reloads "
        "in plain transformers, and `python -m sae_unlearn verify runs/tutorial04/sspu_model` re-checks it."
    ),
    new_code_cell(
        "from transformers import AutoModelForCausalLM\n"
        "from sae_unlearn.export import export_model\n"
        "card = export_model(sspu_model, 'runs/tutorial04/sspu_model',\n"
        "                    {'method': 'sspu', 'data': MODEL, 'verification': report.summary()}, overwrite=True)\n"
        "reloaded = AutoModelForCausalLM.from_pretrained(card['path'])\n"
        "print(type(reloaded).__name__, 'max logit diff after reload', card['max_logit_diff'])"
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
    write(ROOT / "tutorials" / "04_verification.ipynb", TUTORIAL_04)
    for name, cells in STUDIES.items():
        write(ROOT / "notebooks" / name, cells)
