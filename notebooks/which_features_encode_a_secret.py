# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Which features encode a secret?
#
# The secrets model knows 48 fictitious people; four of them are to be forgotten. This study asks which SAE latents
# carry *those* people: do the three latent scorers agree, do the top latents fire on the people's names or on their
# facts, and does a latent that encodes one forget person also fire for the others?
#
# To forget a *secret* rather than a person, run it with `MODEL = "secrets-passcodes"` (the fact-level split: every
# person's passcode is forgotten, all their other facts kept; the same model, its own oracle) and
# `POSITIONS = "answer"` (latents scored only at the token before each answer, where the fact is recalled, instead of
# on every token). `benchmarks/fact_level.py` compares the four combinations, with SSPU's result on each
# (`benchmarks/removal.md`, "Forgetting a person or a secret").

# %% tags=["parameters"]
MODEL = "secrets"
SAE_TOKENS = 60_000
N_LATENTS = 64  # relevant and irrelevant latents to select
POSITIONS = "all"  # "all": every forget token vs every retain token; "answer": the token before each answer
SAE_DIR = None

# %%
import torch

from sae_unlearn import load_zoo_model
from sae_unlearn.pipeline import pipeline_data, sae_stage
from sae_unlearn.saes import SAEFitConfig, encode_batched
from sae_unlearn.selection import latent_stats, select_latents
from sae_unlearn.utils import cache_dir

model = load_zoo_model(MODEL)
data = pipeline_data(MODEL)
stage = sae_stage(
    model,
    data,
    SAE_DIR or cache_dir() / "runs" / MODEL,
    SAEFitConfig(training_samples=SAE_TOKENS),
    n_latents=N_LATENTS,
    progress=False,
    positions=POSITIONS,
)
hook = stage.selection.hook
z = encode_batched(stage.fit.saes[hook], stage.store[hook])
m = stage.forget_mask
print("chosen layer", stage.selection.layer, "scores", stage.selection.layer_scores)

# %% [markdown]
# ## Do the scorers agree?
# Overlap of the top-32 latents chosen by each scorer.

# %%
stats = latent_stats(z[m], z[~m])
tops = {
    s: set(select_latents(stats, n_latents=32, scorer=s).relevant.tolist())
    for s in ("frequency_ratio", "mean_diff", "squared_mean_ratio")
}
for a in tops:
    print(f"{a:20s}", " ".join(f"{len(tops[a] & tops[b]):3d}" for b in tops))

# %% [markdown]
# ## Names or facts?
# For each top latent: the share of its forget-token activation mass that falls on tokens of a forget person's name.

# %%
tok = model.tokenizer
forget_names = {w for p in data.split.forget_subjects for w in p.split()}
pieces = [tok.decode([int(t)]).strip() for t in stage.store.token_ids]
# a piece of 3+ characters inside a name word (shorter ones, "is" or "an", also occur inside names)
is_name = torch.tensor([len(p) >= 3 and any(p in n for n in forget_names) for p in pieces])
rel = stage.selection.latents.relevant[:16].tolist()
rows = []
for i in rel:
    mass = z[:, i].clamp_min(0)
    share = float(mass[m & is_name].sum() / mass[m].sum().clamp_min(1e-9))
    rows.append((i, share))
    print(f"latent {i:5d}: {share:.0%} of its forget activation is on name tokens")
print("mean share on names:", round(sum(s for _, s in rows) / len(rows), 3))

# %% [markdown]
# ## One latent per person?
# Firing frequency of the top latents on each forget person's texts (rows) — a diagonal-ish pattern means
# person-specific features.

# %%
import matplotlib.pyplot as plt

people = data.split.forget_subjects
texts = data.forget_texts
owner = torch.tensor(
    [
        next((k for k, p in enumerate(people) if p in texts[int(s)]), -1) if int(s) < len(texts) else -1
        for s in stage.store.seq_index
    ]
)
freq = torch.stack([(z[owner == k][:, rel] > 0).float().mean(0) for k in range(len(people))])
fig, ax = plt.subplots(figsize=(8, 2.6))
im = ax.imshow(freq, aspect="auto", cmap="magma")
ax.set_yticks(range(len(people)), people)
ax.set_xticks(range(len(rel)), rel, rotation=90, fontsize=7)
fig.colorbar(im, label="firing frequency")
ax.set_title("Top forget latents per forget person")
fig.tight_layout()
print(
    "latents firing mostly for one person:",
    int(((freq.max(0).values / freq.sum(0).clamp_min(1e-9)) > 0.5).sum()),
    "of",
    len(rel),
)

# %% [markdown]
# ## Browse them yourself

# %%
from sae_unlearn.widgets import LatentBrowser

sel = stage.selection.latents
LatentBrowser(model, stage.fit.saes[hook], hook, stage.store, m, sel.scores, sel.relevant)
