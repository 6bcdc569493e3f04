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
# # TOFU-mini: SSPU vs RMU
#
# `tofu-mini` is a tiny model trained on 20 real TOFU authors (Maini et al. 2024); the two forget01 authors are to be
# forgotten. This study runs SSPU and RMU with the same budget and compares them on TOFU's own metrics — forget quality
# (KS test of truth ratios against the retain oracle) and model utility — plus benign relearning. Needs the TOFU data
# (`../shared/data/tofu` or `$SAE_UNLEARN_TOFU`).

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("SAE_UNLEARN_SMOKE") == "1"  # the test suite sets it: fewer steps, the same cells
MODEL = "tofu-mini"
SAE_TOKENS = 30_000
STEPS = 25 if SMOKE else 100
RELEARN_STEPS = (0, 5) if SMOKE else (0, 10)
PROBE_STEPS = 15 if SMOKE else 50
RETAIN_ITEMS = 90 if SMOKE else None  # retain facts in the control and the probe's training set (None: all 360)
SAE_DIR = None

# %%
from sae_unlearn import load_zoo_model, zoo_model_path
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.utils import cache_dir
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

model, oracle = load_zoo_model(MODEL), load_zoo_model(MODEL, oracle=True)
data = pipeline_data(MODEL)
print(data.split)
stage = sae_stage(
    model,
    data,
    SAE_DIR or cache_dir() / "runs" / MODEL,
    SAEFitConfig(training_samples=SAE_TOKENS),
    n_latents=64,
    progress=False,
)
print("layer", stage.selection.layer, "ranks", stage.subspaces.relevant.rank, stage.subspaces.irrelevant.rank)

# %%
vdata = verification_data(MODEL)
if RETAIN_ITEMS is not None:  # a smaller control set: the same attacks, measured faster
    vdata = vdata.with_retain(RETAIN_ITEMS)
# one relearning run (full fine-tuning, lr 1e-3, seed 0) keeps this quick; the default VerifyConfig runs
# the literature's grid (3 learning rates x 3 seeds x full/LoRA) and reports its worst case
config = VerifyConfig(
    attacks={
        "relearn": {"steps": RELEARN_STEPS, "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
        "probe": {"steps": PROBE_STEPS},
    }
)
oracle_evidence = measure(oracle, vdata, config)
reports = {}
for method in ("rmu", "sspu"):
    m, result = unlearn(method, zoo_model_path(MODEL), data, stage, {"steps": STEPS}, progress=False)
    reports[method.upper()] = verify(m, vdata, oracle_evidence, config, name=method.upper())

# %% [markdown]
# ## TOFU's two numbers, and what relearning brings back

# %%
print(f"{'':10s} {'forget quality':>15s} {'model utility':>14s} {'forget ROUGE':>13s} {'relearned':>10s}  verdict")
for name, r in reports.items():
    s = r.summary()
    rouge = r.model.unit.forget_rouge_l_recall
    print(
        f"{name:10s} {s['forget_quality']:15.3g} {s['model_utility']:14.3f} {rouge:13.3f} "
        f"{s['relearn_forget_accuracy']:10.3f}  {s['verdict']}"
    )

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(4.5, 3.4))
for name, r in reports.items():
    s = r.summary()
    ax.scatter(s["model_utility"], max(s["forget_quality"], 1e-12), s=60, label=name)
ax.set_yscale("log")
ax.set_xlabel("model utility")
ax.set_ylabel("forget quality (KS p-value)")
ax.axhline(0.05, ls="--", c="gray")
ax.legend()
ax.set_title("TOFU-mini: up and to the right is better")
fig.tight_layout()

# %%
from sae_unlearn.widgets import VerificationView

VerificationView(reports["SSPU"])
