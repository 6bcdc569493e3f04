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
# # Removed or suppressed?
#
# A model whose answers no longer state a secret has not necessarily lost it. Relearning on a few *other* facts
# about the same people (Hu et al. 2024; Deeb & Roger 2024), projecting out the one direction unlearning wrote
# (Łucki et al. 2024), or reading a middle layer with a probe can bring it back. Here the steering methods (RMU,
# SSPU, and SSPU across layers: one SAE subspace and one steering target per layer) and three methods built to
# resist that (TAR-style adversarial relearning, SAM-smoothed RMU, UNDO's shrink-perturb-distil) are attacked the
# same way as the retain oracle, which never saw the forget set:
#
# 1. how fast each relearns — the worst case over a grid of learning rates and full/LoRA fine-tuning;
# 2. *where in the layers* each still holds the secret — the probe and the logit lens per layer, and direction
#    ablation per layer, each minus the oracle's.
#
# The parameters keep the run to a few minutes on a laptop CPU; `benchmarks/removal_results.py` runs the full grid
# (3 learning rates × 3 seeds × full/LoRA, 50 steps) on both zoo models, with compute, in
# `benchmarks/removal.md`.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("SAE_UNLEARN_SMOKE") == "1"  # the test suite sets it: fewer steps, the same cells
MODEL = "secrets"
SAE_TOKENS = 60_000
STEPS = 30 if SMOKE else 120
METHODS = ("rmu", "sspu", "sspu_layers", "tar", "sam_rmu", "undo")
DISTILL_STEPS = 25 if SMOKE else 100
RELEARN = {"steps": (0, 5) if SMOKE else (0, 5, 10, 20), "lrs": (1e-3, 1e-2), "seeds": (0,), "modes": ("full", "lora")}
PROBE_STEPS = 15 if SMOKE else 60
RETAIN_ITEMS = 64 if SMOKE else None  # retain facts in the control and the probe's training set (None: all)
SAE_DIR = None

# %%
from sae_unlearn import load_zoo_model, zoo_model_path
from sae_unlearn.pipeline import pipeline_data, sae_stage, unlearn
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.unlearning import method_label
from sae_unlearn.utils import cache_dir
from sae_unlearn.verification import VerifyConfig, measure, verification_data, verify
from sae_unlearn.viz import plot_layer_excess, plot_methods_relearn

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
if RETAIN_ITEMS is not None:  # a smaller control set: the same attacks, measured faster
    vdata = vdata.with_retain(RETAIN_ITEMS)
config = VerifyConfig(attacks={"relearn": RELEARN, "probe": {"steps": PROBE_STEPS}}, naturalness=None)
# the original model is the reference of direction ablation: what unlearning added is the difference to it
oracle_evidence = measure(oracle, vdata, config, reference=model)
reports = {}
for method in METHODS:
    settings = {"steps": STEPS} | ({"distill_steps": DISTILL_STEPS} if method == "undo" else {})
    unlearned, result = unlearn(method, zoo_model_path(MODEL), data, stage, settings, progress=False)
    reports[method_label(method)] = verify(
        unlearned, vdata, oracle_evidence, config, name=method_label(method), reference=model
    )
    print(
        f"{method_label(method):8s} {reports[method_label(method)].verdict:14s} "
        f"forget acc {reports[method_label(method)].model.unit.forget_accuracy:.3f}  "
        f"token passes {result.extra.get('token_passes', 0):.3g}"
    )

# %% [markdown]
# ## 1. Does it come back?
#
# Each line is a method's held-out forget accuracy after relearning on the forget people's other facts, the worst
# case over every run of the grid at that step count; the dashed line is the oracle under the same attack (what
# relearning teaches a model that never knew). A method that removed the facts stays near the dashed line.

# %%
plot_methods_relearn({k: r.model.relearn for k, r in reports.items()}, oracle_evidence.relearn)

# %% [markdown]
# Every run of the grid for one method, beside the oracle's runs: which learning rate and which kind of fine-tuning
# (full or LoRA) brings it back fastest.

# %%
reports[method_label(METHODS[0])].figures()["relearn_grid"]

# %% [markdown]
# ## 2. Where in the layers is the secret still held?
#
# The tuned-lens probe picks the true answer among wrong ones at each layer; the logit lens reads the answer's first
# token off each layer. Red cells are layers where the unlearned model still reads out the secret better than the
# oracle does — where it is hidden, not gone.

# %%
plot_layer_excess(
    {k: r.model.attacks["probe"].details["per_layer"] for k, r in reports.items()},
    oracle_evidence.attacks["probe"].details["per_layer"],
    "probe accuracy",
)

# %%
plot_layer_excess(
    {k: r.model.attacks["logit_lens"].details["top1"] for k, r in reports.items()},
    oracle_evidence.attacks["logit_lens"].details["top1"],
    "logit lens top-1",
)

# %% [markdown]
# Direction ablation: the forget accuracy after projecting, out of one layer's residual stream, the direction the
# method added there (its mean difference to the original model on the forget questions). A high value at the
# steered layer is RMU's "junk direction": the knowledge is intact behind one vector.

# %%
layers = range(model.n_layers)
plot_layer_excess(
    {
        k: {layer: r.model.attacks["direction_ablation"].scores[f"layer {layer}"].value for layer in layers}
        for k, r in reports.items()
    },
    {layer: oracle_evidence.attacks["direction_ablation"].scores[f"layer {layer}"].value for layer in layers},
    "forget accuracy after direction ablation",
)

# %% [markdown]
# ## 3. The verdicts
#
# Each verdict with the checks that decided it; "too thin to tell" means an interval on a model−oracle gap straddles
# the margin (with 12-24 facts, a 0.1 margin is two or three facts).

# %%
for name, r in reports.items():
    recovered = [f"{c.name} ({c.model:.2f} vs {c.oracle:.2f})" for c in r.checks if c.recovered]
    print(f"{name:8s} {r.verdict:14s} evidence {r.evidence:17s} recovered by: {', '.join(recovered) or 'nothing'}")
