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
# # 2 · Which SAE features encode the secrets?
#
# SSPU starts by fitting a sparse autoencoder (SAE) per layer on the model's activations (sae-lens's own trainer), then
# asks which layer and which latents separate the forget people's facts from everyone else's. The decoder directions of
# those latents become the *relevant* and *irrelevant* subspaces that SSPU unlearns in.

# %% tags=["parameters"]
# Parameters (CI runs this notebook with these values)
MODEL = "secrets"
SAE_TOKENS = 60_000
N_LATENTS = 64  # relevant and irrelevant latents to select
OUT = None  # None: a shared cache folder, so later notebooks reuse the SAEs

# %%
from IPython.display import display

from sae_unlearn import load_zoo_model
from sae_unlearn.pipeline import pipeline_data
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.utils import cache_dir
from sae_unlearn.widgets import SAETrainingMonitor

model = load_zoo_model(MODEL)
data = pipeline_data(MODEL)
monitor = SAETrainingMonitor()  # live curves while the SAEs train; cached SAEs show their saved curves
display(monitor)

# %%
from sae_unlearn.capture import capture_activations
from sae_unlearn.saes import fit_saes
from sae_unlearn.selection import select_layer_and_latents
from sae_unlearn.viz import sae_stats_table

out = OUT or cache_dir() / "runs" / MODEL
hooks = [f"blocks.{l}.hook_resid_post" for l in range(model.n_layers)]
store = capture_activations(model, data.forget_texts + data.retain_texts, hooks, batch_size=64)
forget_mask = store.seq_index < len(data.forget_texts)
fit = fit_saes(
    store, hooks, SAEFitConfig(training_samples=SAE_TOKENS), out_dir=out, model_name=MODEL, on_log=monitor, log_every=20
)
monitor.show_fit(fit)  # SAEs loaded from the cache: say so, and plot the training log saved with them
sae_stats_table(fit.stats)

# %% [markdown]
# ## Layer selection
# Each layer's score is how well its top latents separate forget texts from retain texts (AUROC; 0.5 is chance).
# The error bars are 95% bootstrap intervals over the texts: layers whose bars overlap are not told apart by these
# texts, and the chosen one is then only the best by a margin the data cannot confirm.

# %%
from sae_unlearn.widgets import LayerSelectionView

result = select_layer_and_latents(fit.saes, store, forget_mask, n_latents=N_LATENTS)
LayerSelectionView(result)

# %%
from sae_unlearn.viz import plot_latent_firing

sel = result.latents
print(sel.firing_contrast())
plot_latent_firing(
    sel.relevant.tolist()[:24],
    sel.stats.freq_forget[sel.relevant[:24]].tolist(),
    sel.stats.freq_retain[sel.relevant[:24]].tolist(),
)

# %% [markdown]
# ## What do the top latents fire on?

# %%
from sae_unlearn.saes import encode_batched
from sae_unlearn.selection import top_activating_contexts

z = encode_batched(fit.saes[result.hook], store[result.hook])
for latent in sel.relevant[:5].tolist():
    ctx = top_activating_contexts(z[:, latent], store, model.tokenizer, forget_mask, n=2)
    print(latent, [c.render() for c in ctx])

# %% [markdown]
# The latent browser: pick a latent to see its activation histogram (forget vs retain), its score rank and its top
# contexts; type any text (a name, a secret) and press the button to see which latents fire on each token (`*` marks
# forget-relevant ones).

# %%
from sae_unlearn.widgets import LatentBrowser

browser = LatentBrowser(model, fit.saes[result.hook], result.hook, store, forget_mask, sel.scores, sel.relevant)
person = data.split.forget_subjects[0]
browser.text.value = f"{person}'s secret passcode is"
browser.show_text()
browser

# %% [markdown]
# ## The two subspaces
# Move the slider to build them from fewer latents.

# %%
from sae_unlearn.widgets import SubspaceInspector

SubspaceInspector(fit.saes[result.hook].W_dec, sel.relevant.tolist(), sel.irrelevant.tolist())
