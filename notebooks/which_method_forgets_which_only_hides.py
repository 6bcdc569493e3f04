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
# # Which method forgets, which only hides?
#
# Every unlearning method in the toolkit's registry, run on the same model with the same data, then attacked the same
# way. Following the SoK on LLM unlearning (Ren et al. 2025), a method has *removed* a fact only if no attack brings it
# back beyond what the retain oracle (the same model trained without the forget set) would answer under the same
# attack; a method that merely stops the model from *saying* it has *suppressed* it.
#
# The contenders:
# - **SSPU** and **RMU** steer the forget data's activations at one layer (SSPU inside SAE-chosen subspaces);
# - the output-level baselines of OpenUnlearning (**GradAscent**, **GradDiff**, **NPO**, **SimNPO**, **IdkDPO**)
#   push down the forget answers' likelihood or push up a refusal;
# - the **SAE interventions** (static, zero and conditional clamping, **DSG**) change no weight at all: they rewrite SAE
#   latents at inference, so their base weights are the original's.
#
# Each method runs with the settings `benchmarks/method_sweep.py` chose for this model by the rule stated there (best
# forget accuracy with retain accuracy ≥ 0.95 of the original), or its defaults; the CI run uses small budgets, so its
# numbers are indicative — `benchmarks/README.md` ("Which method should I use?") has the full-budget table.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("SAE_UNLEARN_SMOKE") == "1"  # the test suite sets it: fewer steps, the same cells
MODEL = "secrets"
SAE_TOKENS = 60_000
STEPS = 15 if SMOKE else 30
METHODS = None  # None: every registered method that runs on MODEL (R²MU's need a reasoning model)
RELEARN_STEPS = (0, 5) if SMOKE else (0, 10)
PROBE_STEPS = 10
RETAIN_ITEMS = 32  # retain facts in the control and the probe's training set (None: all)
QUANT_BITS = (4,)
SETTINGS_FILE = "../benchmarks/method_settings.json"
SAE_DIR = None

# %%
import json
from pathlib import Path

from IPython.display import Markdown
from tqdm.auto import tqdm

from sae_unlearn import load_zoo_model, zoo_model_path
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.unlearning import METHODS as REGISTRY
from sae_unlearn.unlearning import method_label, method_runs_on, settings_for
from sae_unlearn.utils import cache_dir
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

methods = list(METHODS or [m for m in REGISTRY if method_runs_on(m, MODEL)])
chosen = json.loads(Path(SETTINGS_FILE).read_text()).get(MODEL, {}) if Path(SETTINGS_FILE).is_file() else {}
model, oracle = load_zoo_model(MODEL), load_zoo_model(MODEL, oracle=True)
data = pipeline_data(MODEL)
stage = sae_stage(
    model,
    data,
    SAE_DIR or cache_dir() / "runs" / MODEL,
    SAEFitConfig(training_samples=SAE_TOKENS),
    n_latents=64,
    progress=False,
)
Markdown(
    "| method | weights changed | settings | what it does |\n| --- | --- | --- | --- |\n"
    + "\n".join(
        f"| {method_label(m)} | {'yes' if REGISTRY[m].changes_weights else '**no**'} | "
        f"`{json.dumps(settings_for(m, {'steps': STEPS} | chosen.get(m, {})))}` | {REGISTRY[m].description} |"
        for m in methods
    )
)

# %% [markdown]
# ## Unlearn with each method, then attack each result
# The oracle is measured once; every method's model gets the same attacks: benign relearning on the forget people's
# *other* facts, prompt attacks, a tuned-lens probe, the logit lens at every layer, 4-bit weights, and for the SAE
# interventions also the model with its intervention removed (its base weights are the original's).

# %%
vdata = verification_data(MODEL)
if RETAIN_ITEMS is not None:  # a smaller control set: the same attacks, measured faster
    vdata = vdata.with_retain(RETAIN_ITEMS)
# one relearning run keeps this quick; the default VerifyConfig runs the literature's grid
config = VerifyConfig(
    attacks={
        "relearn": {"steps": RELEARN_STEPS, "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
        "probe": {"steps": PROBE_STEPS},
        "quantization": {"bits": QUANT_BITS},
    }
)
oracle_evidence = measure(oracle, vdata, config)
reports = {}
for m in tqdm(methods, desc="methods"):
    # UNDO's distillation gets the same short budget as every method's unlearning
    settings = settings_for(m, {"steps": STEPS} | chosen.get(m, {}) | ({"distill_steps": STEPS} if m == "undo" else {}))
    unlearned, _ = unlearn(m, zoo_model_path(MODEL), data, stage, settings, progress=False)
    reports[m] = verify(unlearned, vdata, oracle_evidence, config, name=method_label(m))
    del unlearned
{method_label(m): r.verdict for m, r in reports.items()}

# %% [markdown]
# ## The comparison table
# *Worst attack* is the highest forget accuracy any attack reaches (over relearning steps, prompts, probe and lens
# layers, quantisation, removing the intervention), with the oracle's under that same attack beside it.


# %%
def worst(report):
    c = max(report.checks, key=lambda c: c.model - c.oracle)
    return f"{c.model:.2f} ({c.oracle:.2f}, {c.name})"


rows = [
    "| method | forget acc | retain acc | forget quality | relearn at the last step (oracle) | probe (oracle) "
    "| worst attack (oracle) | verdict |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]
orelearn = oracle_evidence.relearn
oprobe = oracle_evidence.attacks["probe"].details["accuracy"] if "probe" in oracle_evidence.attacks else None
for m, r in reports.items():
    s = r.summary()
    fq = "n/a" if r.forget_quality is None else f"{r.forget_quality:.3g}"
    probe = "n/a" if s["probe_accuracy"] is None else f"{s['probe_accuracy']:.2f} ({oprobe:.2f})"
    rows.append(
        f"| {method_label(m)} | {s['forget_accuracy']:.3f} | {s['retain_accuracy']:.3f} | {fq} | "
        f"{s['relearn_forget_accuracy']:.2f} ({orelearn[max(orelearn, key=int)]:.2f}) | {probe} | {worst(r)} | "
        f"**{r.verdict}** |"
    )
Markdown("\n".join(rows))

# %% [markdown]
# ## Does it come back? Relearning curves, every method against the oracle
# Held-out forget facts are never in the relearning text; the dashed black line is the oracle, which never knew them.

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4))
for m, r in reports.items():
    curve = r.model.relearn
    steps = sorted(curve, key=int)
    style = "o-" if REGISTRY[m].changes_weights else "s:"
    ax.plot([int(s) for s in steps], [curve[s] for s in steps], style, label=method_label(m), alpha=0.85)
steps = sorted(orelearn, key=int)
ax.plot([int(s) for s in steps], [orelearn[s] for s in steps], "k--", lw=2.5, label="retain oracle")
ax.set_xlabel("relearning steps")
ax.set_ylabel("held-out forget accuracy")
ax.set_ylim(-0.03, 1.03)
ax.legend(fontsize=7, ncol=2)
ax.set_title("Benign relearning (dotted: SAE interventions, hook on)")
fig.tight_layout()
fig

# %% [markdown]
# ## Forgets or hides?
# Each point is a method: how much it still *says* (forget accuracy, x) against the most an attack recovers beyond
# the oracle (y). Removal sits at the origin. A point high above the x-axis hides what is still there; a point far to
# the right has not forgotten at all.

# %%
fig, ax = plt.subplots(figsize=(6, 4.2))
for m, r in reports.items():
    x = r.model.unit.forget_accuracy - oracle_evidence.unit.forget_accuracy
    y = max(c.model - c.oracle for c in r.checks)
    ax.scatter(x, y, s=40, marker="o" if REGISTRY[m].changes_weights else "s")
    ax.annotate(method_label(m), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
ax.axhline(config.margin, color="gray", ls=":", lw=1)
ax.axvline(config.margin, color="gray", ls=":", lw=1)
ax.set_xlabel("forget accuracy above the oracle (what it still says)")
ax.set_ylabel("worst attack above the oracle (what comes back)")
ax.set_xlim(-0.05, 1.05)
ax.set_ylim(-0.05, 1.05)
ax.set_title(f"{MODEL}: dotted lines = the verdict's margin {config.margin}")
fig.tight_layout()
fig

# %% [markdown]
# ## What this shows
# On the zoo models, no method reaches *removed*: the steering methods (RMU, SSPU) and the best output-level baselines
# bring forget accuracy to the oracle's, but relearning on the forget people's other facts and the tuned-lens probe
# bring the held-out facts back well beyond the oracle — the fact is hidden, not gone. The SAE interventions are the
# plainest case: their base weights are the original's, so removing the hook restores everything; with the hook on they
# also trade retain accuracy for forgetting far less favourably than RMU and SSPU (on tofu-mini static clamping is level
# with NPO and SimNPO; on secrets every intervention still answers most forget questions). Which method *hides best*
# differs by attack; the full-budget numbers are in `benchmarks/README.md`, the sweep in `benchmarks/unlearning.md`.
