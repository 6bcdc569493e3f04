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
# # Widget notebook (JupyterLab browser check)
# Opened in JupyterLab and run cell by cell by `tests/browser/test_jupyterlab_render.py`, which then
# works one control of each widget. The SAEs come from the shared cache the tests and tutorials fit
# once; unlearning and verification use the smallest settings that still exercise the widgets.
# `CaptureExplorer` and `BeforeAfter` are on the Voilà page (`widget_page.py`).

# %%
import os
import sys
import tempfile
from pathlib import Path

from IPython.display import display

from sae_unlearn import load_zoo_model
from sae_unlearn.data.splits import UnlearningSplit
from sae_unlearn.models import zoo_model_path
from sae_unlearn.pipeline import pipeline_data, sae_stage
from sae_unlearn.saes import SAEFitConfig
from sae_unlearn.utils import cache_dir
from sae_unlearn.verification import VerificationData, VerifyConfig, verification_data, verify
from sae_unlearn.widgets import (
    ExportPanel,
    LatentBrowser,
    LayerSelectionView,
    SAETrainingMonitor,
    SubspaceInspector,
    UnlearningMonitor,
    VerificationView,
)

print("kernel prefix:", sys.prefix)
model = load_zoo_model("secrets", device="cpu", progress=False)
data = pipeline_data("secrets")
# The SAE folder the tests and tutorials share: fitted once per machine, loaded here.
cfg = SAEFitConfig(training_samples=60_000)
stage = sae_stage(model, data, cache_dir() / "runs" / "secrets", cfg, n_latents=64, progress=False)
sel = stage.selection
relevant, irrelevant = sel.latents.relevant, sel.latents.irrelevant
# Evaluating on every retain fact is slow; 24 of them are enough for the widgets.
small = UnlearningSplit("secrets-small", data.split.forget, data.split.retain[:24])

# %%
# The rows the cached fit recorded, fed the way fit_saes(..., on_log=monitor) feeds them live.
monitor = SAETrainingMonitor()
for row in stage.fit.history:
    monitor(row)
display(monitor)

# %%
display(LayerSelectionView(sel))

# %%
latents = LatentBrowser(
    model, stage.fit.saes[sel.hook], sel.hook, stage.store, stage.forget_mask, sel.latents.scores, relevant
)
display(latents)

# %%
display(SubspaceInspector(stage.fit.saes[sel.hook].W_dec, relevant.tolist(), irrelevant.tolist()))

# %%
unlearning = UnlearningMonitor(
    zoo_model_path("secrets"), stage, data.forget_texts, data.retain_texts, small, {"steps": 10}, eval_every=5
)
unlearning.run()  # SSPU, 10 steps
display(unlearning)

# %%
# Never into the repository: the test names a temporary folder, run by hand it is a fresh one.
export_root = Path(os.environ.get("WIDGET_EXPORT_DIR") or tempfile.mkdtemp(prefix="sae_unlearn_widgets_"))
display(ExportPanel(unlearning.model, {"method": "sspu", "steps": 10}, export_root / "sspu_model"))

# %%
full = verification_data("secrets")
vdata = VerificationData("secrets-small", small, full.relearn_texts, full.relearn_eval)
oracle = load_zoo_model("secrets", oracle=True, device="cpu", progress=False)
quick = VerifyConfig(
    attacks={
        "relearn": {"steps": (0, 5), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
        "probe": {"steps": 20},
        "quantization": {"bits": (8,)},
    }
)
display(VerificationView(verify(unlearning.model, vdata, oracle, quick, name="sspu (10 steps)")))
