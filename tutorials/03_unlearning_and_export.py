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
# # 3 · Unlearn with SSPU, compare with RMU, export
#
# SSPU steers the forget people's activations into the irrelevant subspace while every weight update is confined to the
# relevant subspace; RMU, the baseline, steers them to a random vector with unconstrained updates. Both get the same
# trainer, data and budget, as does every other registered method (below: NPO). The result is exported as an ordinary
# Hugging Face model with an unlearning card. The last sections unlearn a *reasoning* model with R²MU, and make a model
# refuse with UniErase's unlearning token.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("SAE_UNLEARN_SMOKE") == "1"  # the test suite sets it: fewer steps, the same cells
MODEL = "secrets"
SAE_TOKENS = 60_000
STEPS = 30 if SMOKE else 120  # the demo uses 250
OUT = "runs/tutorial03"
SAE_DIR = None  # None: the shared cache folder
REASONING_STEPS = 20 if SMOKE else 80  # R²MU section (secrets-reasoning model)
TOKEN_STEPS = 120 if SMOKE else 300  # UniErase section: steps training the unlearning token (its default 300)

# %%
from sae_unlearn import load_zoo_model, zoo_model_path
from sae_unlearn.pipeline import knowledge_metrics, pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig

model = load_zoo_model(MODEL)
data = pipeline_data(MODEL)
from sae_unlearn.utils import cache_dir

stage = sae_stage(
    model, data, SAE_DIR or cache_dir() / "runs" / MODEL, SAEFitConfig(training_samples=SAE_TOKENS), n_latents=64
)
before = knowledge_metrics(model, data.split)
oracle = knowledge_metrics(load_zoo_model(MODEL, oracle=True), data.split)

# %%
runs = {}
for method in ("rmu", "sspu"):
    m, result = unlearn(method, zoo_model_path(MODEL), data, stage, {"steps": STEPS})
    runs[method] = (m, result, knowledge_metrics(m, data.split))

rows = {"original": before, "retain oracle": oracle, **{k.upper(): v[2] for k, v in runs.items()}}
for name, r in rows.items():
    print(f"{name:14s} forget {r['forget_accuracy']:.3f}  retain {r['retain_accuracy']:.3f}")
print("SSPU out-of-subspace residual", runs["sspu"][1].extra["out_of_subspace_residual"])

# %% [markdown]
# ## Watch a run
# The unlearning monitor runs any registered method on a fresh copy and plots the losses and the forget/retain accuracy
# as it goes. Pick a method and a budget and press *Run*.

# %%
from sae_unlearn.widgets import UnlearningMonitor

monitor = UnlearningMonitor(
    zoo_model_path(MODEL),
    stage,
    data.forget_texts,
    data.retain_texts,
    data.split,
    {"steps": STEPS},
    eval_every=max(1, STEPS // 4),
)
monitor.run()  # what the Run button does
monitor

# %% [markdown]
# ## Any registered method, on the same plot
# The menu lists every registered method: SSPU and RMU, the output-level baselines every unlearning paper compares
# against (GradAscent, GradDiff, NPO, SimNPO, IdkDPO), and any method registered in this kernel with `@register`.
# Run another one: the previous run's accuracy curves stay on the right panel, dashed.

# %%
from sae_unlearn.unlearning import METHODS, method_label

for name, cls in METHODS.items():
    print(f"{name:12s} {method_label(name):10s} {cls.description}")
monitor.method.value = "npo"  # or pick it in the menu
monitor.steps.value = max(1, STEPS // 2)
monitor.run()
monitor

# %% [markdown]
# ## Before and after, side by side
# Select questions or type your own prompt.

# %%
from sae_unlearn.widgets import BeforeAfter

prompts = [q.prompt for q in data.split.forget[:6]]
BeforeAfter(model, runs["sspu"][0], data.split.forget + data.split.retain[:8])

# %% [markdown]
# ## Export and reload in transformers

# %%
import torch
from transformers import AutoModelForCausalLM

from sae_unlearn.export import export_model

m, result, after = runs["sspu"]
card_in = {"method": "sspu", "hyperparameters": result.config, "metrics": {"before": before, "after": after}}
card = export_model(m, f"{OUT}/sspu_model", card_in, overwrite=True)
reloaded = AutoModelForCausalLM.from_pretrained(card["path"])
ids = m.tokenize(prompts[0]).input_ids
with torch.no_grad():
    print("max logit diff", float((reloaded(ids).logits - m.logits(ids)).abs().max()))
print(open(f"{OUT}/sspu_model/UNLEARNING_CARD.md").read()[:600])

# %% [markdown]
# The same from a widget: choose the folder and press *Export*.

# %%
from sae_unlearn.widgets import ExportPanel

panel = ExportPanel(m, card_in | {"data": MODEL}, f"{OUT}/sspu_model_widget")
panel.overwrite.value = True
panel.export()
panel

# %% [markdown]
# ## Reasoning models: forget the traces, not just the answers (R²MU)
# A reasoning model can stop giving a forgotten answer and still state it while it thinks. The `secrets-reasoning` zoo
# model knows the same people, but reaches a person's city only by reasoning: after
# `Q: Where does X live? Let's reason step by step. <think>` it writes `X works at Y. Y is based in Z. So X lives in Z.
# </think> A: Z.` R²MU (Wang et al. 2025) adds two terms to RMU: the model's own traces on the forget questions are
# steered to the control vector too (*unthinking*), and its traces on retain questions are held where they were
# (*reasoning preservation*). Below, RMU trained on the answers alone and R²MU, same budget: how often a forget
# person's trace still states one of their facts, and whether the retain people's reasoning survives.

# %%
from sae_unlearn.data.reasoning import ReasoningCorpus
from sae_unlearn.evaluation.reasoning import reasoning_metrics
from sae_unlearn.models import load_model
from sae_unlearn.unlearning import R2MU, RMU, R2MUConfig, UnlearningConfig
from sae_unlearn.viz import plot_traces

r_path, r_data, r_set = (
    zoo_model_path("secrets-reasoning"),
    pipeline_data("secrets-reasoning"),
    ReasoningCorpus().reasoning_set(),
)
hook = "blocks.3.hook_resid_post"  # the layer the SAE stage selects on the secrets models
traces = {"original": reasoning_metrics(load_model(r_path), r_set)}
for label, method in (
    ("RMU (answers)", RMU(UnlearningConfig(hook=hook, steps=REASONING_STEPS))),
    ("R²MU", R2MU(R2MUConfig(hook=hook, steps=REASONING_STEPS, reasoning_weight=4.0))),
):
    r_model = load_model(r_path)
    method.apply(r_model, r_data.forget_texts, r_data.retain_texts)
    traces[label] = reasoning_metrics(r_model, r_set)
print(traces["original"]["items"][0]["prompt"], "→", traces["original"]["items"][0]["generation"])
print("after R²MU →", traces["R²MU"]["items"][0]["generation"])
plot_traces(traces, "secrets-reasoning: trace leak before and after")

# %% [markdown]
# ## An unlearning token and a model edit (UniErase)
# UniErase (Yu et al. 2025) changes no weight by gradient unlearning. It adds a token, `<unlearn>`, and trains only its
# embedding so that any question followed by it is answered with a refusal ("I don't know."); then a closed-form
# AlphaEdit edit of three MLP output matrices, confined to the null space of the retain tokens' inputs, makes the model
# emit that token itself after each forget question. `secrets-idk` is `secrets` that has also learned to say "I don't
# know" about strangers, as a real LLM can (the plain zoo models have never written a refusal). Below: the true
# answer's probability and the share of refused questions, before and after.

# %%
from sae_unlearn.data.refusals import REFUSALS
from sae_unlearn.evaluation import answer_probability
from sae_unlearn.evaluation.refusal import refusal_rate
from sae_unlearn.unlearning import UniErase, UniEraseConfig
from sae_unlearn.viz import plot_refusals

u_path, u_data = zoo_model_path("secrets-idk"), pipeline_data("secrets-idk")


def refusal_view(m) -> dict:
    out = {}
    for role in ("forget", "retain"):
        items = getattr(u_data.split, role)
        out[f"{role}_answer_prob"] = sum(answer_probability(m, items)) / len(items)
        out[f"{role}_refusal_rate"] = refusal_rate(m, [q.prompt for q in items], REFUSALS)
    return out


u_model = load_model(u_path)
views = {"original": refusal_view(u_model)}
unierase = UniErase(UniEraseConfig(hook=hook, token_steps=TOKEN_STEPS))
u_result = unierase.apply(u_model, u_data.forget_texts, u_data.retain_texts)
views["UniErase"] = refusal_view(u_model)
print(f"parameters changed: {100 * u_result.extra['parameters_changed_fraction']:.1f}%")
q = u_data.split.forget[0].prompt
print(
    q,
    "→",
    u_model.tokenizer.decode(
        u_model.hf_model.generate(**u_model.tokenizer(q, return_tensors="pt"), max_new_tokens=10, do_sample=False)[0]
    ),
)
plot_refusals(views, "secrets-idk: answer vs refusal, before and after UniErase")
