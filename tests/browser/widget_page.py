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
# # Widget page (browser check)
# Rendered by Voilà in the headless-browser test.

# %%
from sae_unlearn import load_zoo_model
from sae_unlearn.capture import capture_activations
from sae_unlearn.data import SecretsCorpus
from sae_unlearn.widgets import BeforeAfter, CaptureExplorer

model = load_zoo_model("secrets", device="cpu", progress=False)
corpus = SecretsCorpus()
texts = corpus.forget_texts() + corpus.retain_texts()[:60]
hooks = [f"blocks.{l}.hook_resid_post" for l in range(model.n_layers)]
store = capture_activations(model, texts, hooks, progress=False)
CaptureExplorer(store, store.seq_index < len(corpus.forget_texts()))

# %%
oracle = load_zoo_model("secrets", oracle=True, device="cpu", progress=False)
BeforeAfter(model, oracle, corpus.split().forget[:6])
