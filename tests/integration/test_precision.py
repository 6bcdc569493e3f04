"""Precision and placement: the pipeline in bfloat16 (capture, SAE encoding, selection, SSPU with
float32 master weights, export saved in bfloat16), accelerate's device_map, dtype checks, and the
demo on a CUDA GPU in bfloat16 (marked ``gpu``: it skips without one)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from sae_unlearn.capture import capture_activations
from sae_unlearn.export import export_model
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.models.weights import as_out_in, weight_layouts, writer_weight
from sae_unlearn.pipeline import sae_stage
from sae_unlearn.unlearning import SSPU, SSPUConfig, default_params
from sae_unlearn.utils import resolve_dtype

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bf16_model():
    return load_model(zoo_model_path("secrets", progress=False), device="cpu", dtype="bfloat16")


def test_capture_and_selection_run_in_bfloat16(bf16_model, stage):
    data, st = stage
    assert bf16_model.dtype == torch.bfloat16
    store = capture_activations(bf16_model, data.forget_texts[:4], [st.selection.hook], progress=False)
    assert store[st.selection.hook].dtype == torch.bfloat16  # captures keep the model's dtype
    for streaming in (False, True):
        bf = sae_stage(bf16_model, data, None, saes=st.fit.saes, n_latents=64, streaming=streaming, progress=False)
        # float32 SAEs on bfloat16 activations: the same layer; the top latents nearly the same
        assert bf.selection.hook == st.selection.hook
        top = set(st.selection.latents.relevant[:16].tolist())
        assert len(top & set(bf.selection.latents.relevant[:16].tolist())) >= 12


def test_sspu_in_bfloat16_keeps_float32_master_weights_and_the_subspace(bf16_model, stage, tmp_path):
    data, st = stage
    fp32 = load_model(zoo_model_path("secrets", progress=False), device="cpu")
    model = load_model(zoo_model_path("secrets", progress=False), device="cpu", dtype=torch.bfloat16)
    names = default_params(model, st.selection.hook)
    cfg = SSPUConfig(hook=st.selection.hook, steps=30, guard_every=0)
    updates = {}
    for m in (fp32, model):
        layout = weight_layouts(m)
        before = {n: as_out_in(m.hf_named_parameters()[n], layout[n]).detach().float().clone() for n in names}
        SSPU(st.subspaces.relevant, st.subspaces.irrelevant, cfg).apply(
            m, data.forget_texts, data.retain_texts, progress=False
        )
        params = m.hf_named_parameters()
        updates[m.dtype] = {n: as_out_in(params[n], layout[n]).detach().float() - before[n] for n in names}
        assert all(params[n].dtype == m.dtype for n in names)
    basis = st.subspaces.relevant.basis.float()
    for n in names:
        dw32, dw16 = updates[torch.float32][n], updates[torch.bfloat16][n]
        assert dw16.norm() > 0.5 * dw32.norm()  # the steps were not rounded away
        # inside the relevant subspace up to bfloat16's rounding of the weights (2^-8 relative)
        outside = dw16 - basis @ (basis.T @ dw16)
        w = model.hf_named_parameters()[n].float()
        assert outside.norm() <= 2**-7 * w.norm()
        # and close to the float32 run's update
        assert (dw16 - dw32).norm() <= 0.25 * dw32.norm()
    assert writer_weight(model, st.selection.layer, "mlp").name in names

    card = export_model(model, tmp_path / "bf16_export", {"method": "SSPU"})
    assert card["dtype"] == "bfloat16" and card["reload_weights_identical"]
    # like with like: the reloaded folder through the bridge gives the in-memory model's logits exactly
    assert card["max_logit_diff"] == 0.0
    # the bridge and plain transformers round differently in bfloat16: at most ~2 ulps of the largest logit
    ids = model.tokenize(["Q: Where does the author live? A:", "The secret passcode is"]).input_ids
    assert card["plain_transformers_max_logit_diff"] <= 2 * 2**-7 * float(model.logits(ids).abs().max())
    files = list((tmp_path / "bf16_export").glob("*.safetensors"))
    with safe_open(files[0], framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # saved in the model's dtype
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16_export", local_files_only=True)
    assert plain.dtype == torch.bfloat16
    assert json.loads((tmp_path / "bf16_export" / "unlearning_card.json").read_text())["dtype"] == "bfloat16"


def test_device_map_loads_the_same_model(secrets_model, no_runtime_typecheck):
    # accelerate places the modules (here all on the one device there is; across GPUs where there are several)
    placed = load_model(zoo_model_path("secrets", progress=False), device_map="auto")
    assert placed.device == torch.device("cpu")
    ids = secrets_model.tokenize(["Q: Where does Pavel Thornbury live? A:"]).input_ids
    torch.testing.assert_close(placed.logits(ids), secrets_model.logits(ids), rtol=0, atol=0)
    assert placed.validate_hooks(["blocks.3.hook_resid_post"])
    with pytest.raises(TypeError, match="device_map=3 must be"):
        load_model(zoo_model_path("secrets", progress=False), device_map=3)  # type: ignore[arg-type]


def test_dtype_errors_name_the_value_and_the_choices(monkeypatch, no_runtime_typecheck):
    with pytest.raises(ValueError, match=r"dtype='fp8'; choose one of \['bfloat16', 'float16', 'float32'\]"):
        resolve_dtype("fp8")
    with pytest.raises(ValueError, match="float64 and integer types are not run"):
        resolve_dtype(torch.float64)
    with pytest.raises(TypeError, match="must be a name"):
        resolve_dtype(16)  # type: ignore[arg-type]
    # a GPU without bfloat16 (before Ampere): refused before any weights are read
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-16GB")
    with pytest.raises(ValueError, match="Tesla V100.*lacks bfloat16 support; use dtype='float16'"):
        resolve_dtype("bfloat16", "cuda")
    assert resolve_dtype("float16", "cuda") == torch.float16
    from sae_unlearn.demo import DemoConfig

    with pytest.raises(ValueError, match="dtype='half'"):
        DemoConfig(dtype="half")


@pytest.mark.gpu
def test_demo_pipeline_on_cuda_in_bfloat16(tmp_path):
    from sae_unlearn.demo import DemoConfig, run_demo

    report = run_demo(DemoConfig(out=str(tmp_path / "demo"), device="cuda", dtype="bfloat16", progress=False))
    assert report["config"]["dtype"] == "bfloat16"
    u, m, o = report["unlearning"], report["model"], report["oracle"]
    for method in ("sspu", "rmu"):
        assert u[method]["forget_accuracy"] <= o["forget_accuracy"] + 0.1
        assert u[method]["retain_accuracy"] >= 0.95 * m["retain_accuracy"]
    assert report["export"]["reload_weights_identical"] and report["export"]["max_logit_diff"] <= 0.5


def test_an_export_whose_reload_disagrees_is_not_written(secrets_model, tmp_path, monkeypatch):
    """Each reload check has a tolerance that fits the dtype, and a check that fails stops the export."""
    import sae_unlearn.export as exp

    monkeypatch.setattr(exp, "same_path_tolerance", lambda dtype, ref: -1.0)  # nothing can pass
    with pytest.raises(RuntimeError, match=r"loaded with load_model gives logits .* away.*not written"):
        export_model(secrets_model, tmp_path / "export", {"method": "none"})
    assert not (tmp_path / "export").exists()
    ref = torch.tensor([19.0, -3.0])
    assert exp.other_path_tolerance(torch.float32, ref) == 1e-4
    assert exp.other_path_tolerance(torch.bfloat16, ref) == 4 * 2**-7 * 19.0
