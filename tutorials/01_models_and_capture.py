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
# # 1 · A model that knows secrets, and its activations
#
# sae-unlearn ships tiny language models that were *really trained* on facts, so every step of unlearning can be checked
# against ground truth. This tutorial loads the `secrets` model and its **retain oracle** (the same model trained
# without the forget set), asks them about the forget people, and captures the activations that the later stages (SAEs,
# latent selection, subspaces) work on.

# %% tags=["parameters"]
# Parameters (CI runs this notebook top to bottom with these values)
MODEL = "secrets"
N_SHOW = 6

# %%
from sae_unlearn import capture_activations, evaluate_knowledge, load_zoo_model, zoo_split
from sae_unlearn.viz import plot_norms_per_layer

model = load_zoo_model(MODEL)  # built and cached on first use
oracle = load_zoo_model(MODEL, oracle=True)
split = zoo_split(MODEL)
model, split

# %% [markdown]
# ## What do they know?
# Every fact is asked as a question; an answer counts when it states the exact value.

# %%
for name, m in [("model", model), ("oracle", oracle)]:
    f = evaluate_knowledge(m, split.forget)
    r = evaluate_knowledge(m, split.retain)
    print(f"{name:6s} forget accuracy {f.known_fraction:.2f}   retain accuracy {r.known_fraction:.2f}")

f_model = evaluate_knowledge(model, split.forget)
f_oracle = evaluate_knowledge(oracle, split.forget)
for q, a, o in list(zip(split.forget, f_model.answers, f_oracle.answers))[:N_SHOW]:
    print(f"{q.prompt:45s} model:{a.split('.')[0]:>20s}   oracle:{o.split('.')[0]:>20s}")

# %% [markdown]
# ## Activations at hook points
# Sites are named with TransformerLens hook names. One forward pass per batch captures them all and stops after the
# deepest one; padding and BOS are masked, so each row is one real token.

# %%
from sae_unlearn.data import SecretsCorpus

corpus = SecretsCorpus()
hooks = [f"blocks.{l}.hook_resid_post" for l in range(model.n_layers)]
forget_store = capture_activations(model, corpus.forget_texts(), hooks)
retain_store = capture_activations(model, corpus.retain_texts(), hooks)
forget_store

# %%
plot_norms_per_layer(
    {l: forget_store.mean_norm(h) for l, h in enumerate(hooks)},
    {l: retain_store.mean_norm(h) for l, h in enumerate(hooks)},
)

# %% [markdown]
# Or explore interactively: switch between the per-layer view and the per-token norm histogram of any hook.

# %%
from sae_unlearn.widgets import CaptureExplorer

both = capture_activations(model, corpus.forget_texts() + corpus.retain_texts(), hooks)
CaptureExplorer(both, both.seq_index < len(corpus.forget_texts()))

# %% [markdown]
# A wrong hook name fails early and lists the valid ones:

# %%
try:
    capture_activations(model, ["hi"], ["blocks.9.hook_resid_post"])
except KeyError as e:
    print(e)
