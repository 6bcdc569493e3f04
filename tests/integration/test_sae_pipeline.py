"""SSPU stages 1-3 on the secrets model: SAEs per layer, selection evidence, subspaces."""

import pytest
import torch
from sae_lens import SAE

from sae_unlearn.capture import capture_activations
from sae_unlearn.models import resid_post
from sae_unlearn.saes import (
    SAEFitConfig,
    SAEMismatchError,
    ce_loss_recovered,
    check_sae_fits,
    encode_batched,
    fit_saes,
    load_sae,
    spliced,
)
from sae_unlearn.selection import latents_on_text, select_layer_and_latents, top_activating_contexts
from sae_unlearn.subspaces import build_subspaces

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(secrets_model, secrets_corpus, tmp_path_factory):
    forget, retain = secrets_corpus.forget_texts(), secrets_corpus.retain_texts()
    hooks = [resid_post(l) for l in range(secrets_model.n_layers)]
    store = capture_activations(secrets_model, forget + retain, hooks, progress=False)
    out = tmp_path_factory.mktemp("sae_fit")
    cfg = SAEFitConfig(device="cpu", training_samples=200_000)  # what the demo uses
    fit = fit_saes(store, hooks, cfg, out_dir=out, model_name="secrets", progress=False)
    mask = store.seq_index < len(forget)
    result = select_layer_and_latents(fit.saes, store, mask, n_latents=32)
    return {"store": store, "fit": fit, "mask": mask, "result": result, "out": out, "texts": forget + retain}


def test_sae_quality_bar_on_every_layer(pipeline):
    """Explained variance >= 0.9 at L0 <= 32 (TopK), in particular on the selected layer."""
    for hook, st in pipeline["fit"].stats.items():
        assert st.l0 <= 32 and st.explained_variance >= 0.9, (hook, st)
    chosen = pipeline["result"].hook
    assert pipeline["fit"].stats[chosen].explained_variance >= 0.9


def test_saved_in_sae_lens_format(pipeline):
    for hook in pipeline["fit"].hooks:
        sae = SAE.load_from_disk(pipeline["out"] / "saes" / hook)
        assert sae.cfg.metadata.hook_name == hook and sae.cfg.d_in == 128
        torch.testing.assert_close(sae.W_dec, pipeline["fit"].saes[hook].W_dec)


def test_ce_loss_recovered(secrets_model, pipeline):
    ce = ce_loss_recovered(secrets_model, pipeline["fit"].saes, pipeline["texts"][::10])
    for hook, row in ce.items():
        assert row["ce_zero_ablation"] > row["ce_with_sae"] >= 0
        assert row["ce_loss_recovered"] > 0.9, (hook, row)


def test_top_latents_fire_on_forget_facts_far_more_than_on_retain(pipeline, secrets_corpus, secrets_model):
    result = pipeline["result"]
    assert set(result.layer_scores) == set(pipeline["fit"].hooks)
    assert result.hook == max(result.layer_scores, key=result.layer_scores.get)
    assert result.layer_scores[result.hook] > 0.8  # forget texts well separated from retain texts
    fire = result.latents.firing_contrast()
    assert fire["ratio"] >= 3.0, fire
    # the most forget-specific latent fires on a forget person's name
    z = encode_batched(pipeline["fit"].saes[result.hook], pipeline["store"][result.hook])
    top = int(result.latents.relevant[0])
    contexts = top_activating_contexts(z[:, top], pipeline["store"], secrets_model.tokenizer, pipeline["mask"], n=3)
    assert contexts and all(c.is_forget for c in contexts)
    names = {part for p in secrets_corpus.forget_people for part in p.name.split()}
    assert any(c.token.strip() in names for c in contexts), [c.render() for c in contexts]


def test_selection_is_deterministic(pipeline):
    again = select_layer_and_latents(pipeline["fit"].saes, pipeline["store"], pipeline["mask"], n_latents=32)
    assert again.hook == pipeline["result"].hook
    assert torch.equal(again.latents.relevant, pipeline["result"].latents.relevant)


def test_subspaces_from_selected_decoder_directions(pipeline):
    sel = pipeline["result"].latents
    pair = build_subspaces(pipeline["fit"].saes[pipeline["result"].hook].W_dec, sel.relevant, sel.irrelevant)
    d = pair.diagnostics()
    assert 1 <= d["relevant_rank"] <= 32 and 1 <= d["irrelevant_rank"] <= 32
    assert d["orthogonality_error"] < 1e-5
    assert 0 < d["min_principal_angle_deg"] <= 90


def test_latents_on_any_text(secrets_model, pipeline, secrets_corpus):
    hook = pipeline["result"].hook
    name = secrets_corpus.forget_people[0].name
    rows = latents_on_text(secrets_model, pipeline["fit"].saes[hook], hook, f"{name} lives in")
    assert rows[0]["token"] == "<s>" and len(rows) > 3
    assert any(r["latents"] for r in rows)


def test_sae_mismatch_errors(secrets_model, pipeline, tmp_path):
    hook = pipeline["result"].hook
    sae = pipeline["fit"].saes[hook]
    assert check_sae_fits(secrets_model, sae) == hook
    other = "blocks.0.hook_resid_post" if hook != "blocks.0.hook_resid_post" else "blocks.1.hook_resid_post"
    with pytest.raises(SAEMismatchError, match=f"trained on '{hook}' but is asked to run at '{other}'"):
        check_sae_fits(secrets_model, sae, other)
    sae.cfg.metadata.hook_name = None  # an SAE without a recorded hook, used at a wider site
    try:
        with pytest.raises(SAEMismatchError, match="d_in=128 does not match the activation width 512"):
            check_sae_fits(secrets_model, sae, "blocks.0.mlp.hook_post")
    finally:
        sae.cfg.metadata.hook_name = hook
    loaded = load_sae(pipeline["out"] / "saes" / hook, model=secrets_model)
    assert loaded.cfg.d_sae == sae.cfg.d_sae
    with pytest.raises(FileNotFoundError, match="not a sae-lens SAE folder"):
        load_sae(tmp_path)
    with pytest.raises(FileNotFoundError, match="release name together with sae_id"):
        load_sae("no-such-release")


def test_splice_restores_the_model_even_on_error(secrets_model, pipeline):
    hook = pipeline["result"].hook
    ids = secrets_model.tokenize("Q: Where does someone live? A:").input_ids
    with torch.no_grad():
        clean = secrets_model.logits(ids)
        with pytest.raises(RuntimeError), spliced(secrets_model, {hook: pipeline["fit"].saes[hook]}):
            assert not torch.equal(secrets_model.logits(ids), clean)
            raise RuntimeError("boom")
        torch.testing.assert_close(secrets_model.logits(ids), clean, rtol=0, atol=0)


@pytest.mark.online
def test_pretrained_sae_by_release():
    sae = load_sae("gpt2-small-res-jb", sae_id="blocks.0.hook_resid_pre")
    assert sae.cfg.d_in == 768
