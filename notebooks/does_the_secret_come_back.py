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
# # Does the secret come back?
#
# Hu et al. (2024) showed that unlearned models can be *jogged*: fine-tuning on a little loosely related text brings the
# forgotten answers back. Here both SSPU and RMU make the secrets model stop saying the forget people's passcodes,
# cities and employers — then we try to bring them back: relearning on the people's *other* facts, prompt attacks, a
# tuned-lens probe, the logit lens, and 4-bit weights — each compared with the retain oracle under the same attack.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("SAE_UNLEARN_SMOKE") == "1"  # the test suite sets it: fewer steps, the same cells
MODEL = "secrets"
SAE_TOKENS = 60_000
STEPS = 30 if SMOKE else 120
RELEARN_STEPS = (0, 2, 5) if SMOKE else (0, 2, 5, 10, 20)
PROBE_STEPS = 15 if SMOKE else 60
SAE_DIR = None

# %%
from sae_unlearn import load_zoo_model, zoo_model_path
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.utils import cache_dir
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify

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
vdata = verification_data(MODEL)
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
    m, _ = unlearn(method, zoo_model_path(MODEL), data, stage, {"steps": STEPS}, progress=False)
    reports[method.upper()] = verify(m, vdata, oracle_evidence, config, name=method.upper())
{k: r.verdict for k, r in reports.items()}

# %% [markdown]
# ## Relearning curves
# Held-out facts are never in the relearning text.

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.4))
curves = {
    **{k: r.model.relearn for k, r in reports.items()},
    "retain oracle": oracle_evidence.relearn,
}
for name, c in curves.items():
    steps = sorted(c, key=int)
    ax.plot([int(s) for s in steps], [c[s] for s in steps], "o-", label=name)
ax.set_xlabel("relearning steps")
ax.set_ylabel("held-out forget accuracy")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Every attack, side by side

# %%
names = [c.name for c in reports["SSPU"].checks]
print(f"{'attack':28s} {'RMU':>6s} {'SSPU':>6s} {'oracle':>7s}")
for i, n in enumerate(names):
    r, s = reports["RMU"].checks[i], reports["SSPU"].checks[i]
    print(f"{n:28s} {r.model:6.3f} {s.model:6.3f} {s.oracle:7.3f}")

# %% [markdown]
# ## Where is it still written?
# The logit lens per layer: the unlearning methods edit the MLPs of the chosen layer and the two before it; anything
# decodable before that is untouched.

# %%
for name, r in reports.items():
    print(name, {k: round(v, 2) for k, v in r.model.attacks["logit_lens"].details["top1"].items()})
print("oracle", {k: round(v, 2) for k, v in oracle_evidence.attacks["logit_lens"].details["top1"].items()})
print(
    "updated matrices:",
    stage.selection.hook,
    "-> mlp.down_proj of layers",
    list(range(max(0, stage.selection.layer - 2), stage.selection.layer + 1)),
)

# %%
from sae_unlearn.widgets import VerificationView

VerificationView(reports["RMU"])
