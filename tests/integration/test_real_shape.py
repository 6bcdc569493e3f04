"""The whole pipeline at gpt2-small's real shape (12 blocks, d_model 768, 12 heads, context 1024,
vocabulary 50257; ~124M parameters) with seeded random weights, through the public stages a
notebook calls: load, SAEs fitted at three residual hooks, ``sae_stage`` (selection and subspaces),
SSPU for three steps, export, reload and a quick verification.

Random weights know nothing, so nothing here is about forgetting: the stages must run, keep the
real shapes, edit only what they should and write files a real gpt2-small run would write. The
cost is kept to a couple of minutes on two cores by a small share of the secrets corpus (~2.5k
tokens), narrow SAEs (2 × 768 latents, ten steps), three unlearning steps and a verification
with a handful of facts and two relearning steps.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from sae_lens import SAE
from safetensors import safe_open

from sae_unlearn.capture import capture_activations
from sae_unlearn.data import SecretsCorpus
from sae_unlearn.data.splits import UnlearningSplit
from sae_unlearn.export import CARD_JSON, export_model
from sae_unlearn.models import load_model
from sae_unlearn.models.hooks import hook_layer
from sae_unlearn.models.tokenizer import train_bpe_tokenizer
from sae_unlearn.pipeline import PipelineData, knowledge_metrics, sae_stage, unlearn
from sae_unlearn.recipes.rehearsal import BUNDLED_CONFIGS, CONFIGS_DIR
from sae_unlearn.saes import SAEFitConfig, fit_saes
from sae_unlearn.verification import EVIDENCE, VERDICTS, VerificationData, VerifyConfig, verify

pytestmark = pytest.mark.integration

CONFIG = json.loads((CONFIGS_DIR / BUNDLED_CONFIGS["gpt2"]).read_text())
N_PARAMS = 124_439_808
"""gpt2-small's parameters (the unembedding tied to the embedding)."""
HOOKS = ["blocks.3.hook_resid_post", "blocks.5.hook_resid_post", "blocks.7.hook_resid_post"]
EXPANSION = 2
SSPU_STEPS = 3
# the few long reasoning-style texts (~36 tokens) would pad every batch to three times its length
MAX_CHARS = 100


@pytest.fixture(scope="module")
def data() -> PipelineData:
    """The short forget texts and a quarter of the short retain texts (~2.5k tokens), four facts of each side."""
    corpus = SecretsCorpus()
    split = corpus.split()
    return PipelineData(
        "gpt2-small-random",
        UnlearningSplit("secrets-few", split.forget[:4], split.retain[:4]),
        [t for t in corpus.forget_texts() if len(t) <= MAX_CHARS],
        [t for t in corpus.retain_texts() if len(t) <= MAX_CHARS][::4],
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The module's model, SAEs and export (~1 GB), removed afterwards."""
    folder = tmp_path_factory.mktemp("real_shape")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def model_dir(work):
    """gpt2-small's bundled config with seeded random weights, and a BPE tokenizer trained on the corpus
    (the real vocabulary is not available offline; its 4096 ids fit in the 50257-row embedding)."""
    folder = work / "gpt2-small"
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**CONFIG))
    hf.save_pretrained(folder)
    del hf
    corpus = SecretsCorpus()
    tokenizer = train_bpe_tokenizer(corpus.forget_texts() + corpus.retain_texts(), 4096)
    tokenizer.model_max_length = CONFIG["n_positions"]
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    """The original model, loaded the way a real run loads it (also the verification's oracle)."""
    return load_model(model_dir, device="cpu")


@pytest.fixture(scope="module")
def fitted(model, data, work):
    store = capture_activations(model, data.forget_texts + data.retain_texts, HOOKS, batch_size=32, progress=False)
    cfg = SAEFitConfig(
        expansion_factor=EXPANSION, k=16, batch_size=256, training_samples=2560, lr_warm_up_steps=2, device="cpu"
    )
    out = work / "sae_fit"
    fit = fit_saes(store, HOOKS, cfg, out_dir=out, model_name=data.name, progress=False, prepend_bos=model.prepends_bos)
    return store, fit, out


@pytest.fixture(scope="module")
def stage(model, data, fitted):
    return sae_stage(model, data, None, saes=fitted[1].saes, n_latents=16, batch_size=32, progress=False)


@pytest.fixture(scope="module")
def unlearned(model_dir, data, stage):
    settings = {"steps": SSPU_STEPS, "batch_size": 4, "guard_every": 0}
    return unlearn("sspu", model_dir, data, stage, settings, device="cpu", progress=False)


@pytest.fixture(scope="module")
def exported(unlearned, stage, work):
    new, result = unlearned
    out = work / "gpt2-small-sspu"
    card = export_model(
        new, out, {"method": "sspu", "layer": stage.selection.hook, "hyperparameters": result.config, "seed": 0}
    )
    return out, card


@pytest.fixture(scope="module")
def reloaded(exported):
    """The export, loaded the way a later run loads it."""
    return load_model(exported[0], device="cpu")


def test_the_model_has_gpt2_smalls_full_shape(model):
    assert (model.n_layers, model.d_model, model.n_ctx) == (12, 768, 1024)
    cfg = model.hf_model.config
    assert (cfg.n_head, cfg.vocab_size, cfg.model_type) == (12, 50257, "gpt2")
    state = model.hf_state_dict()
    assert tuple(state["transformer.wte.weight"].shape) == (50257, 768)
    assert tuple(state["transformer.h.11.mlp.c_fc.weight"].shape) == (768, 3072)
    # the bridge registers split q/k/v views beside c_attn: count each storage once
    storages = {t.untyped_storage().data_ptr(): t.numel() for t in state.values()}
    assert sum(storages.values()) == N_PARAMS
    assert model.prepends_bos and len(model.tokenizer) <= 4096


def test_saes_fitted_at_three_hooks_read_d_model(fitted, data):
    store, fit, out = fitted
    assert 1000 <= store.n_tokens <= 4000 and store.hooks == HOOKS
    assert all(tuple(store[h].shape) == (store.n_tokens, 768) for h in HOOKS)
    assert fit.hooks == HOOKS
    for hook in HOOKS:
        sae = fit.saes[hook]
        assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.metadata.hook_name) == (768, EXPANSION * 768, hook)
        assert tuple(sae.W_dec.shape) == (EXPANSION * 768, 768)
        stats = fit.stats[hook]
        assert stats.n_tokens == store.n_tokens and stats.l0 <= 16 and stats.explained_variance > 0, (hook, stats)
        saved = SAE.load_from_disk(out / "saes" / hook)  # sae-lens's own format, at full width
        torch.testing.assert_close(saved.W_dec, sae.W_dec)


def test_sae_stage_selects_a_fitted_hook_and_builds_768_dimensional_subspaces(stage):
    sel = stage.selection
    assert sel.hook in HOOKS and set(sel.layer_scores) == set(HOOKS)
    assert stage.store is not None and stage.store.hooks == HOOKS
    relevant, irrelevant = sel.latents.relevant, sel.latents.irrelevant
    assert len(relevant) == len(irrelevant) == 16
    assert int(torch.cat([relevant, irrelevant]).max()) < EXPANSION * 768
    assert not set(relevant.tolist()) & set(irrelevant.tolist())
    for sub in (stage.subspaces.relevant, stage.subspaces.irrelevant):
        assert sub.basis.shape[0] == 768 and 1 <= sub.rank <= 16
        torch.testing.assert_close(sub.basis.T @ sub.basis, torch.eye(sub.rank), atol=1e-5, rtol=0)


def test_sspu_edits_only_three_mlp_output_matrices_inside_the_relevant_subspace(model, stage, unlearned):
    new, result = unlearned
    layer = hook_layer(stage.selection.hook)
    names = [f"transformer.h.{i}.mlp.c_proj.weight" for i in range(layer - 2, layer + 1)]
    assert result.params == names and len(result.history) == SSPU_STEPS and result.stopped_early is None
    before, after = model.hf_state_dict(), new.hf_state_dict()
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == set(names)
    q = stage.subspaces.relevant.basis.double()
    for n in names:
        delta = (after[n] - before[n]).double()
        assert tuple(delta.shape) == (3072, 768)  # GPT-2's Conv1D: (in, out); the output side is the last
        assert float((delta - delta @ q @ q.T).norm() / delta.norm()) < 1e-5, n
    assert result.extra["out_of_subspace_residual"] < 1e-5 and result.extra["update_norm"] > 0
    assert result.extra["relevant_rank"] == stage.subspaces.relevant.rank


def test_export_writes_gpt2_small_safetensors(exported, unlearned):
    out, card = exported
    _, result = unlearned
    assert card["reload_weights_identical"] and card["max_logit_diff"] <= 1e-5
    assert card["plain_transformers_max_logit_diff"] <= 1e-4
    assert json.loads((out / CARD_JSON).read_text())["weights_hash"] == card["weights_hash"]
    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(out.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            shapes |= {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert shapes["transformer.wte.weight"] == (50257, 768) and shapes["transformer.wpe.weight"] == (1024, 768)
    assert shapes["transformer.h.0.attn.c_attn.weight"] == (768, 2304)
    assert all(shapes[n] == (3072, 768) for n in result.params)
    assert {k.split(".")[2] for k in shapes if k.startswith("transformer.h.")} == {str(i) for i in range(12)}
    assert sum(torch.Size(s).numel() for s in shapes.values()) == N_PARAMS  # the tied unembedding stored once


def test_the_export_reloads_with_the_edit_and_the_same_logits_and_answers(reloaded, unlearned, data):
    new, result = unlearned
    state, edited = reloaded.hf_state_dict(), new.hf_state_dict()
    assert all(torch.equal(state[n], edited[n]) for n in result.params)
    ids = reloaded.tokenize([q.prompt for q in data.split.forget]).input_ids
    torch.testing.assert_close(reloaded.logits(ids), new.logits(ids), rtol=0, atol=1e-5)
    metrics = knowledge_metrics(reloaded, data.split)
    roles, kinds = ("forget", "retain"), ("accuracy", "rouge_l_recall", "answer_prob")
    assert set(metrics) == {f"{r}_{k}" for r in roles for k in kinds}
    assert all(0 <= v <= 1 for v in metrics.values())


def test_a_quick_verification_of_the_export_returns_a_full_report(reloaded, model, data, tmp_path):
    """The cheapest verification: the data's four forget and four retain facts, two full fine-tuning
    steps on four relearning texts and the logit lens, against the original random model as oracle."""
    texts, evaluated = SecretsCorpus().relearn_split()
    vdata = VerificationData("secrets-few", data.split, texts[:4], evaluated[:2])
    relearn = {"steps": (0, 2), "lrs": (1e-3,), "seeds": (0,), "modes": ("full",), "batch_size": 2}
    skip = ("direction_ablation", "intervention_removed", "probe", "prompts", "quantization")
    config = VerifyConfig(attacks={"relearn": relearn}, skip=skip, naturalness=None)
    report = verify(reloaded, vdata, model, config, name="gpt2-small-sspu")
    assert report.verdict in VERDICTS and report.evidence in EVIDENCE and report.reasons
    assert set(report.model.attacks) == set(report.oracle.attacks) == {"relearn", "logit_lens"}
    assert set(report.model.relearn) == {"0", "2"} and report.model.unit.n == 4
    assert len(report.model.attacks["logit_lens"].details["top1"]) == 12  # read out after every block
    summary = report.summary()
    for key in ("forget_accuracy", "retain_accuracy", "relearn_forget_accuracy", "logit_lens_max_top1"):
        assert summary[key] is not None and 0 <= summary[key] <= 1, key
    saved = json.loads(report.save(tmp_path, figures=False).read_text())
    assert saved["verdict"] == report.verdict and len(saved["checks"]) == len(report.checks) > 0
