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
# # 4 · Is it gone or only hidden? Verify the unlearned model
#
# Forget accuracy at zero says the model no longer *says* the secret. The verification report asks whether it is really
# gone, comparing the model with the retain oracle (never saw the forget set) under the same checks: TOFU's truth ratio
# and forget quality, retain utility, and attacks that try to bring the knowledge back — benign relearning, prompt
# attacks, a probe, the logit lens and 4-bit quantisation. Verdict: *removed*, *suppressed* or *not forgotten*.

# %% tags=["parameters"]
# Parameters (CI runs this notebook with these values)
MODEL = "secrets"
SAE_TOKENS = 60_000
STEPS = 120
RELEARN_STEPS = (0, 10, 50)
PROBE_STEPS = 60
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
    model, data, SAE_DIR or cache_dir() / "runs" / MODEL, SAEFitConfig(training_samples=SAE_TOKENS), n_latents=64
)
sspu_model, _ = unlearn("sspu", zoo_model_path(MODEL), data, stage, {"steps": STEPS})

# %% [markdown]
# Relearning fine-tunes on *other* facts about the forget people (job, pet, birth year) and asks for the held-out ones
# (passcode, city, employer):

# %%
vdata = verification_data(MODEL)
print(len(vdata.relearn_texts), "relearning texts, e.g.", vdata.relearn_texts[:2])
print(len(vdata.relearn_eval), "held-out facts, e.g.", [q.prompt for q in vdata.relearn_eval[:2]])
# one relearning run (full fine-tuning, lr 1e-3, seed 0) keeps this quick; the default VerifyConfig runs
# the literature's grid (3 learning rates x 3 seeds x full/LoRA) and reports its worst case
config = VerifyConfig(
    attacks={
        "relearn": {"steps": RELEARN_STEPS, "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
        "probe": {"steps": PROBE_STEPS},
    }
)
oracle_evidence = measure(oracle, vdata, config)  # measured once, reused for every model

# %%
report = verify(sspu_model, vdata, oracle_evidence, config, name="SSPU")
report

# %% [markdown]
# The interactive view: verdict, every check against the oracle, and the figures.

# %%
from sae_unlearn.widgets import VerificationView

VerificationView(report)

# %% [markdown]
# The same from the command line, on any saved model (here the zoo model itself, which has not forgotten anything):
#
# ```
# python -m sae_unlearn verify MODEL_DIR [--oracle DIR] [--data secrets]
# ```

# %%
report.save("runs/tutorial04")
import json

json.load(open("runs/tutorial04/verification.json"))["summary"]

# %% [markdown]
# ## Ship it with its evidence
# Export the unlearned model with the verdict in its card; it reloads in plain transformers, and
# `python -m sae_unlearn verify runs/tutorial04/sspu_model` re-checks it.

# %%
from transformers import AutoModelForCausalLM

from sae_unlearn.export import export_model

card = export_model(
    sspu_model,
    "runs/tutorial04/sspu_model",
    {"method": "sspu", "data": MODEL, "verification": report.summary()},
    overwrite=True,
)
reloaded = AutoModelForCausalLM.from_pretrained(card["path"])
print(type(reloaded).__name__, "max logit diff after reload", card["max_logit_diff"])
