"""Widgets driven as a user would: set values, click, and check what they show."""

import html
from dataclasses import replace

import pytest
import torch
from matplotlib.container import ErrorbarContainer

from sae_unlearn.capture import capture_activations
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.saes import SAEFitConfig, fit_saes
from sae_unlearn.widgets import (
    BeforeAfter,
    CaptureExplorer,
    ExportPanel,
    LatentBrowser,
    LayerSelectionView,
    SAETrainingMonitor,
    SubspaceInspector,
    UnlearningMonitor,
    VerificationView,
)

pytestmark = pytest.mark.integration


def _lines(fig):
    return [line for ax in fig.axes for line in ax.get_lines()]


def test_capture_explorer_switches_view_and_hook(stage):
    data, st = stage
    w = CaptureExplorer(st.store, st.forget_mask)
    first = w.panel.figure
    assert len(_lines(first)) == 2  # forget and retain curves
    w.view.value = "histogram"
    w.hook.value = "blocks.1.hook_resid_post"
    assert w.panel.figure is not first and "blocks.1.hook_resid_post" in w.panel.figure.axes[0].get_title()
    with pytest.raises(ValueError, match=r"forget_mask has shape \(3,\) but the store holds"):
        CaptureExplorer(st.store, torch.zeros(3, dtype=torch.bool))


def test_sae_training_monitor_records_live_rows(secrets_model, secrets_corpus, tmp_path):
    store = capture_activations(
        secrets_model, secrets_corpus.forget_texts(), ["blocks.2.hook_resid_post"], progress=False
    )
    monitor = SAETrainingMonitor(redraw_every=2)
    cfg = SAEFitConfig(device="cpu", training_samples=20_000, batch_size=128, log_every=20)
    fit_saes(store, config=cfg, out_dir=tmp_path, progress=False, on_log=monitor)
    steps = [r["step"] for r in monitor.history]
    assert steps[0] == 0 and len(steps) >= 5 and steps == sorted(steps)
    assert monitor.history[-1]["explained_variance"] > monitor.history[0]["explained_variance"]
    assert "FVE" in monitor.status.value and monitor.panel.figure is not None
    monitor.metric.value = "l0"
    assert monitor.panel.figure.axes[0].get_ylabel() == "l0"


def test_sae_training_monitor_shows_a_fit_loaded_from_the_cache(secrets_model, secrets_corpus, tmp_path):
    store = capture_activations(
        secrets_model, secrets_corpus.forget_texts(), ["blocks.2.hook_resid_post"], progress=False
    )
    cfg = SAEFitConfig(device="cpu", training_samples=6_000, batch_size=128, log_every=10)
    live = SAETrainingMonitor()
    trained = fit_saes(store, config=cfg, out_dir=tmp_path, progress=False, on_log=live)
    live.show_fit(trained)  # rows arrived live: they stay, the status says it is done
    assert live.status.value.startswith("done") and "FVE" in live.status.value
    assert [r["step"] for r in live.history] == [r["step"] for r in trained.history]

    monitor = SAETrainingMonitor()
    cached = fit_saes(store, config=cfg, out_dir=tmp_path, progress=False, on_log=monitor)
    assert cached.from_cache and monitor.history == [] and "waiting" in monitor.status.value
    monitor.show_fit(cached)
    assert "loaded from the cache" in monitor.status.value and str(tmp_path) in monitor.status.value
    assert monitor.history == cached.history and len(monitor.history) >= 4
    curve = _lines(monitor.panel.figure)[0]
    assert list(curve.get_xdata()) == [r["step"] for r in cached.history]

    bare = SAETrainingMonitor()
    bare.show_fit(replace(cached, history=[]))  # a fit saved before training logs were kept
    assert "no training log" in bare.status.value and bare.panel.figure is None


def test_layer_and_latent_browsers(stage, secrets_model):
    data, st = stage
    sel = st.selection
    lv = LayerSelectionView(sel)
    assert "(chosen)" in lv.info.value
    low, high = sel.layer_score_intervals[sel.hook]
    assert f"95% interval {low:.3f}-{high:.3f}" in lv.info.value
    ax = lv.panel.figure.axes[0]
    assert ax.get_ylim()[0] <= 0.5  # the axis starts at chance, not just below the lowest bar
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars.lines[2][0].get_segments()) == len(sel.layer_scores)  # an error bar per layer
    other = next(h for h in sel.layer_scores if h != sel.hook)
    lv.layer.value = other
    assert "(chosen)" not in lv.info.value and other in lv.info.value

    s = sel.latents
    lb = LatentBrowser(secrets_model, st.fit.saes[sel.hook], sel.hook, st.store, st.forget_mask, s.scores, s.relevant)
    top = int(s.relevant[0])
    assert lb.latent.value == top and "Top-activating contexts" in lb.contexts.value
    lb.latent.value = int(s.relevant[3])
    assert str(int(s.relevant[3])) in lb.panel.figure.axes[0].get_title()
    lb.view.value = "ranking"
    assert "rank 3" in lb.panel.figure.axes[0].get_title()
    person = data.split.forget[0].subject
    lb.text.value = f"{person}'s secret passcode is"
    lb.run_text.click()
    assert person.split()[0] in lb.text_out.value and "*" in lb.text_out.value  # a forget-relevant latent fires
    lb.text.value = "  "
    lb.run_text.click()
    assert "type some text" in lb.text_out.value


def test_subspace_inspector_slider_rebuilds(stage):
    _, st = stage
    s = st.selection.latents
    w = SubspaceInspector(st.fit.saes[st.selection.hook].W_dec, s.relevant.tolist(), s.irrelevant.tolist())
    assert w.pair.relevant.rank == st.subspaces.relevant.rank
    w.k.value = 5
    assert w.pair.relevant.rank == 5 and "<td" in w.info.value


def test_unlearning_monitor_before_after_and_export(stage, secrets_model, tmp_path):
    data, st = stage
    mon = UnlearningMonitor(
        zoo_model_path("secrets"), st, data.forget_texts, data.retain_texts, data.split, {"steps": 20}, eval_every=10
    )
    mon.method.value = "rmu"
    mon.steps.value = 20
    mon.run_button.click()
    assert mon.result.method == "rmu" and len(mon.history) == 20
    assert [e["step"] for e in mon.evals] == [0, 10, 20]
    assert mon.evals[0]["forget_accuracy"] == 1.0 and "rmu done" in mon.status.value
    mon.steps.value = 0
    with pytest.raises(ValueError, match="steps=0"):
        mon.run()
    rmu_model = mon.model
    mon.method.value, mon.steps.value = "r2mu", 2  # listed, but the secrets model does not reason: refused
    refused = "'r2mu' unlearns reasoning traces and needs a reasoning model"  # before the model is loaded
    with pytest.raises(ValueError, match=refused):
        mon.run()
    assert html.escape(refused) in mon.status.value and "r2mu" not in mon.runs
    # any registered method, compared with the earlier run on the same axes
    assert {"sspu", "rmu", "npo", "grad_diff", "simnpo", "idk_dpo", "r2mu", "sspu_r2mu"} <= {
        v for _, v in mon.method.options
    }
    mon.method.value, mon.steps.value = "npo", 10
    mon.run_button.click()
    assert mon.result.method == "npo" and set(mon.runs) == {"rmu", "npo"}
    labels = [t.get_text() for t in mon.panel.figure.axes[1].get_legend().get_texts()]
    assert "RMU: forget" in labels and "RMU: retain" in labels and "forget accuracy" in labels
    mon.model = rmu_model

    ba = BeforeAfter(secrets_model, mon.model, data.split.forget[:6])
    assert len(ba.rows) == 4 and all(r["original_knows"] for r in ba.rows)
    ba.prompt.value = "Q: Where does Nobody Known live? A:"
    ba.ask.click()
    assert len(ba.rows) == 5 and ba.rows[-1]["prompt"].startswith("Q: Where does Nobody")

    panel = ExportPanel(mon.model, {"method": "rmu"}, tmp_path / "exported")
    panel.button.click()
    assert panel.written["max_logit_diff"] < 1e-4 and "model.safetensors" in panel.status.value
    panel.button.click()  # exists, overwrite off: shown, not raised, nothing lost
    assert "not exported" in panel.status.value and (tmp_path / "exported" / "model.safetensors").is_file()
    load_model(tmp_path / "exported", device="cpu")


def test_verification_view_switches_figures(secrets_model, secrets_oracle):
    from sae_unlearn.verification import VerifyConfig, verification_data, verify

    report = verify(
        secrets_model,
        verification_data("secrets"),
        secrets_oracle,
        VerifyConfig(
            attacks={
                "relearn": {"steps": (0, 5), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",)},
                "probe": {"steps": 20},
            }
        ),
    )
    w = VerificationView(report)
    assert "not forgotten" in w.verdict.value and "relearn 5 steps" in w.table.value
    w.figure.value = "logit_lens"
    assert w.panel.figure is report.figures()["logit_lens"] or "Logit lens" in w.panel.figure.axes[0].get_title()


def test_widgets_on_pretrained_saes_selected_by_streaming(stage, secrets_model):
    """A stage built on given SAEs with streaming selection drives the selection, SAE and
    unlearning widgets; the browsers that need stored activations say what to capture."""
    from sae_unlearn.pipeline import sae_stage

    data, st = stage
    streamed = sae_stage(secrets_model, data, None, saes=st.fit.path, n_latents=64, streaming=True, progress=False)
    monitor = SAETrainingMonitor()
    monitor.show_fit(streamed.fit)
    assert "pretrained SAEs" in monitor.status.value and str(st.fit.path) in monitor.status.value
    lv = LayerSelectionView(streamed.selection)
    assert "(chosen)" in lv.info.value and streamed.selection.hook in lv.info.value
    mon = UnlearningMonitor(
        zoo_model_path("secrets"),
        streamed,
        data.forget_texts,
        data.retain_texts,
        data.split,
        {"steps": 4},
        eval_every=4,
    )
    mon.method.value, mon.steps.value = "sspu", 4
    mon.run_button.click()
    assert mon.result.method == "sspu" and len(mon.history) == 4
    sel = streamed.selection
    with pytest.raises(ValueError, match="LatentBrowser needs stored activations.*capture_activations"):
        LatentBrowser(secrets_model, streamed.fit.saes[sel.hook], sel.hook, None, None, sel.latents.scores)
    with pytest.raises(ValueError, match="CaptureExplorer needs stored activations"):
        CaptureExplorer(streamed.store, streamed.forget_mask)
