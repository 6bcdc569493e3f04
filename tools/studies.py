"""Cell sources of the worked studies in ``notebooks/`` (written by ``tools/make_notebooks.py``)."""

from nbformat.v4 import new_code_cell, new_markdown_cell

PARAMS = {"tags": ["parameters"]}

# Set-up shared by the notebooks that unlearn and verify (tutorial 04 and two studies): imports,
# the zoo model and its retain oracle, the pipeline data. Each notebook still reads top to bottom.
VERIFY_SETUP = (
    "from sae_unlearn import load_zoo_model, zoo_model_path\n"
    "from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn\n"
    "from sae_unlearn.saes import SAEFitConfig\n"
    "from sae_unlearn.utils import cache_dir\n"
    "from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify\n\n"
    "model, oracle = load_zoo_model(MODEL), load_zoo_model(MODEL, oracle=True)\n"
    "data = pipeline_data(MODEL)\n"
)

WHICH_FEATURES = [
    new_markdown_cell(
        "# Which features encode a secret?\n\n"
        "The secrets model knows 48 fictitious people; four of them are to be forgotten. This study "
        "asks which SAE latents carry *those* people: do the three latent scorers agree, do the top "
        "latents fire on the people's names or on their facts, and does a latent that encodes one "
        "forget person also fire for the others?"
    ),
    new_code_cell("MODEL = 'secrets'\nSAE_TOKENS = 60_000\nK = 64\nSAE_DIR = None", metadata=PARAMS),
    new_code_cell(
        "import torch\n"
        "from sae_unlearn import load_zoo_model\n"
        "from sae_unlearn.pipeline import pipeline_data, sae_stage\n"
        "from sae_unlearn.saes import SAEFitConfig, encode_batched\n"
        "from sae_unlearn.selection import latent_stats, select_latents\n"
        "from sae_unlearn.utils import cache_dir\n\n"
        "model = load_zoo_model(MODEL)\n"
        "data = pipeline_data(MODEL)\n"
        "stage = sae_stage(model, data, SAE_DIR or cache_dir() / 'runs' / MODEL,\n"
        "                  SAEFitConfig(training_samples=SAE_TOKENS), k=K, progress=False)\n"
        "hook = stage.selection.hook\n"
        "z = encode_batched(stage.fit.saes[hook], stage.store[hook])\n"
        "m = stage.forget_mask\n"
        "print('chosen layer', stage.selection.layer, 'scores', stage.selection.layer_scores)"
    ),
    new_markdown_cell("## Do the scorers agree?\nOverlap of the top-32 latents chosen by each scorer."),
    new_code_cell(
        "stats = latent_stats(z[m], z[~m])\n"
        "tops = {s: set(select_latents(stats, k=32, scorer=s).relevant.tolist())\n"
        "        for s in ('frequency_ratio', 'mean_diff', 'squared_mean_ratio')}\n"
        "for a in tops:\n"
        "    print(f'{a:20s}', ' '.join(f'{len(tops[a] & tops[b]):3d}' for b in tops))"
    ),
    new_markdown_cell(
        "## Names or facts?\nFor each top latent: the share of its forget-token activation mass that "
        "falls on tokens of a forget person's name."
    ),
    new_code_cell(
        "tok = model.tokenizer\n"
        "forget_names = {w for p in data.split.forget_subjects for w in p.split()}\n"
        "pieces = [tok.decode([int(t)]).strip() for t in stage.store.token_ids]\n"
        "is_name = torch.tensor([any(p and p in n for n in forget_names) for p in pieces])\n"
        "rel = stage.selection.selection.relevant[:16].tolist()\n"
        "rows = []\n"
        "for i in rel:\n"
        "    mass = z[:, i].clamp_min(0)\n"
        "    share = float(mass[m & is_name].sum() / mass[m].sum().clamp_min(1e-9))\n"
        "    rows.append((i, share))\n"
        "    print(f'latent {i:5d}: {share:.0%} of its forget activation is on name tokens')\n"
        "print('mean share on names:', round(sum(s for _, s in rows) / len(rows), 3))"
    ),
    new_markdown_cell(
        "## One latent per person?\nFiring frequency of the top latents on each forget person's texts "
        "(rows) — a diagonal-ish pattern means person-specific features."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "people = data.split.forget_subjects\n"
        "texts = data.forget_texts\n"
        "owner = torch.tensor([next((k for k, p in enumerate(people) if p in texts[int(s)]), -1)\n"
        "                      if int(s) < len(texts) else -1 for s in stage.store.seq_index])\n"
        "freq = torch.stack([(z[owner == k][:, rel] > 0).float().mean(0) for k in range(len(people))])\n"
        "fig, ax = plt.subplots(figsize=(8, 2.6))\n"
        "im = ax.imshow(freq, aspect='auto', cmap='magma')\n"
        "ax.set_yticks(range(len(people)), people); ax.set_xticks(range(len(rel)), rel, rotation=90, fontsize=7)\n"
        "fig.colorbar(im, label='firing frequency'); ax.set_title('Top forget latents per forget person')\n"
        "fig.tight_layout()\n"
        "print('latents firing mostly for one person:', int(((freq.max(0).values / freq.sum(0).clamp_min(1e-9)) > 0.5).sum()), 'of', len(rel))"
    ),
    new_markdown_cell("## Browse them yourself"),
    new_code_cell(
        "from sae_unlearn.widgets import LatentBrowser\n"
        "sel = stage.selection.selection\n"
        "LatentBrowser(model, stage.fit.saes[hook], hook, stage.store, m, sel.scores, sel.relevant)"
    ),
]

TOFU_STUDY = [
    new_markdown_cell(
        "# TOFU-mini: SSPU vs RMU\n\n"
        "`tofu-mini` is a tiny model trained on 20 real TOFU authors (Maini et al. 2024); the two "
        "forget01 authors are to be forgotten. This study runs SSPU and RMU with the same budget and "
        "compares them on TOFU's own metrics — forget quality (KS test of truth ratios against the "
        "retain oracle) and model utility — plus benign relearning. Needs the TOFU data "
        "(`../shared/data/tofu` or `$SAE_UNLEARN_TOFU`)."
    ),
    new_code_cell(
        "MODEL = 'tofu-mini'\nSAE_TOKENS = 30_000\nSTEPS = 100\nRELEARN_STEPS = (0, 10)\nPROBE_STEPS = 50\nSAE_DIR = None",
        metadata=PARAMS,
    ),
    new_code_cell(
        VERIFY_SETUP + "print(data.split)\n"
        "stage = sae_stage(model, data, SAE_DIR or cache_dir() / 'runs' / MODEL,\n"
        "                  SAEFitConfig(training_samples=SAE_TOKENS), k=64, progress=False)\n"
        "print('layer', stage.selection.layer, 'ranks', stage.subspaces.relevant.rank, stage.subspaces.irrelevant.rank)"
    ),
    new_code_cell(
        "vdata = verification_data(MODEL)\n"
        "config = VerifyConfig(relearn_steps=RELEARN_STEPS, probe_steps=PROBE_STEPS)\n"
        "oracle_evidence = measure(oracle, vdata, config)\n"
        "reports = {}\n"
        "for method in ('rmu', 'sspu'):\n"
        "    m, result = unlearn(method, zoo_model_path(MODEL), data, stage, {'steps': STEPS}, progress=False)\n"
        "    reports[method.upper()] = verify(m, vdata, oracle_evidence, config, name=method.upper())"
    ),
    new_markdown_cell("## TOFU's two numbers, and what relearning brings back"),
    new_code_cell(
        "print(f\"{'':10s} {'forget quality':>15s} {'model utility':>14s} {'forget ROUGE':>13s} {'relearned':>10s}  verdict\")\n"
        "for name, r in reports.items():\n"
        "    s = r.summary()\n"
        "    rouge = r.model['unit']['forget_rouge_l_recall']\n"
        "    print(f\"{name:10s} {s['forget_quality']:15.3g} {s['model_utility']:14.3f} {rouge:13.3f} \"\n"
        "          f\"{s['relearn_forget_accuracy']:10.3f}  {s['verdict']}\")"
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4.5, 3.4))\n"
        "for name, r in reports.items():\n"
        "    s = r.summary()\n"
        "    ax.scatter(s['model_utility'], max(s['forget_quality'], 1e-12), s=60, label=name)\n"
        "ax.set_yscale('log'); ax.set_xlabel('model utility'); ax.set_ylabel('forget quality (KS p-value)')\n"
        "ax.axhline(0.05, ls='--', c='gray'); ax.legend(); ax.set_title('TOFU-mini: up and to the right is better')\n"
        "fig.tight_layout()"
    ),
    new_code_cell("from sae_unlearn.widgets import VerificationView\nVerificationView(reports['SSPU'])"),
]

COME_BACK = [
    new_markdown_cell(
        "# Does the secret come back?\n\n"
        "Hu et al. (2024) showed that unlearned models can be *jogged*: fine-tuning on a little "
        "loosely related text brings the forgotten answers back. Here both SSPU and RMU make the "
        "secrets model stop saying the forget people's passcodes, cities and employers — then we try "
        "to bring them back: relearning on the people's *other* facts, prompt attacks, a tuned-lens "
        "probe, the logit lens, and 4-bit weights — each compared with the retain oracle under the "
        "same attack."
    ),
    new_code_cell(
        "MODEL = 'secrets'\nSAE_TOKENS = 60_000\nSTEPS = 120\nRELEARN_STEPS = (0, 2, 5, 10, 20)\nPROBE_STEPS = 60\nSAE_DIR = None",
        metadata=PARAMS,
    ),
    new_code_cell(
        VERIFY_SETUP + "stage = sae_stage(model, data, SAE_DIR or cache_dir() / 'runs' / MODEL,\n"
        "                  SAEFitConfig(training_samples=SAE_TOKENS), k=64, progress=False)\n"
        "vdata = verification_data(MODEL)\n"
        "config = VerifyConfig(relearn_steps=RELEARN_STEPS, probe_steps=PROBE_STEPS)\n"
        "oracle_evidence = measure(oracle, vdata, config)\n"
        "reports = {}\n"
        "for method in ('rmu', 'sspu'):\n"
        "    m, _ = unlearn(method, zoo_model_path(MODEL), data, stage, {'steps': STEPS}, progress=False)\n"
        "    reports[method.upper()] = verify(m, vdata, oracle_evidence, config, name=method.upper())\n"
        "{k: r.verdict for k, r in reports.items()}"
    ),
    new_markdown_cell("## Relearning curves\nHeld-out facts are never in the relearning text."),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(5, 3.4))\n"
        "curves = {**{k: r.model['reconstruction']['relearn'] for k, r in reports.items()},\n"
        "          'retain oracle': oracle_evidence['reconstruction']['relearn']}\n"
        "for name, c in curves.items():\n"
        "    steps = sorted(c, key=int)\n"
        "    ax.plot([int(s) for s in steps], [c[s] for s in steps], 'o-', label=name)\n"
        "ax.set_xlabel('relearning steps'); ax.set_ylabel('held-out forget accuracy'); ax.legend()\n"
        "fig.tight_layout()"
    ),
    new_markdown_cell("## Every attack, side by side"),
    new_code_cell(
        "names = [c.name for c in reports['SSPU'].checks]\n"
        "print(f\"{'attack':28s} {'RMU':>6s} {'SSPU':>6s} {'oracle':>7s}\")\n"
        "for i, n in enumerate(names):\n"
        "    r, s = reports['RMU'].checks[i], reports['SSPU'].checks[i]\n"
        "    print(f'{n:28s} {r.model:6.3f} {s.model:6.3f} {s.oracle:7.3f}')"
    ),
    new_markdown_cell(
        "## Where is it still written?\nThe logit lens per layer: the unlearning methods edit the MLPs "
        "of the chosen layer and the two before it; anything decodable before that is untouched."
    ),
    new_code_cell(
        "for name, r in reports.items():\n"
        "    print(name, {k: round(v, 2) for k, v in r.model['reconstruction']['logit_lens']['top1'].items()})\n"
        "print('oracle', {k: round(v, 2) for k, v in oracle_evidence['reconstruction']['logit_lens']['top1'].items()})\n"
        "print('updated matrices:', stage.selection.hook, '-> mlp.down_proj of layers',\n"
        "      list(range(max(0, stage.selection.layer - 2), stage.selection.layer + 1)))"
    ),
    new_code_cell("from sae_unlearn.widgets import VerificationView\nVerificationView(reports['RMU'])"),
]

STUDIES = {
    "which_features_encode_a_secret.ipynb": WHICH_FEATURES,
    "tofu_mini_sspu_vs_rmu.ipynb": TOFU_STUDY,
    "does_the_secret_come_back.ipynb": COME_BACK,
}
