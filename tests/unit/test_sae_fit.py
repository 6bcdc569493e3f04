"""SAE fitting with sae-lens's trainer on synthetic activations (no language model)."""

import pytest
import torch
from jaxtyping import TypeCheckError
from sae_lens import SAE

from sae_unlearn.capture import ActivationBatch, ActivationStore
from sae_unlearn.saes import SAEFitConfig, fit_saes, load_fitted_saes, reconstruction_stats
from sae_unlearn.saes import training as training_mod

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def sparse_store(n=3000, d=16, n_feat=48, seed=0):
    """Activations that really are sparse sums of a few directions."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_feat, d, generator=g)
    acts = {}
    for i, h in enumerate(HOOKS):
        codes = torch.rand(n, n_feat, generator=g) * (torch.rand(n, n_feat, generator=g) < 4 / n_feat)
        acts[h] = codes @ dirs * (i + 1)
    batch = ActivationBatch(acts, torch.zeros(n, dtype=torch.long), torch.arange(n), torch.ones(n, dtype=torch.long))
    return ActivationStore.from_batches([batch], HOOKS)


CFG = SAEFitConfig(
    expansion_factor=4, k=8, training_samples=60_000, batch_size=256, lr=3e-3, n_checkpoints=3, device="cpu"
)


def test_fit_saves_in_sae_lens_format_and_reconstructs(tmp_path):
    store = sparse_store()
    fit = fit_saes(store, HOOKS, CFG, out_dir=tmp_path, model_name="synthetic", progress=False)
    for h in HOOKS:
        sae = SAE.load_from_disk(tmp_path / "saes" / h)  # sae-lens's own loader
        assert sae.cfg.d_sae == 64 and sae.cfg.metadata.hook_name == h
        st = reconstruction_stats(sae, store[h])
        assert st.l0 == pytest.approx(8.0) and st.explained_variance > 0.8
        assert st.explained_variance == pytest.approx(fit.stats[h].explained_variance, abs=1e-6)
    assert not (tmp_path / "sae_checkpoints").exists() or not any((tmp_path / "sae_checkpoints").iterdir())


def test_same_seed_same_saes_and_finished_fit_is_reused(tmp_path, monkeypatch):
    store = sparse_store()
    a = fit_saes(store, HOOKS, CFG, out_dir=tmp_path / "a", progress=False)
    b = fit_saes(store, HOOKS, CFG, out_dir=tmp_path / "b", progress=False)
    for h in HOOKS:
        assert torch.equal(a.saes[h].W_dec, b.saes[h].W_dec)
    monkeypatch.setattr(training_mod, "MultiSAETrainer", None)  # would fail if it trained again
    again = fit_saes(store, HOOKS, CFG, out_dir=tmp_path / "a", progress=False)
    assert torch.equal(again.saes[HOOKS[0]].W_dec, a.saes[HOOKS[0]].W_dec)


def test_interrupted_fit_resumes_to_the_same_weights(tmp_path, monkeypatch):
    store = sparse_store()
    ref = fit_saes(store, HOOKS, CFG, progress=False)
    real_iter = ActivationStore.iter_batches

    def interrupting(self, *a, **k):
        for i, batch in enumerate(real_iter(self, *a, **k)):
            if i == 150:  # after the first two checkpoints (at ~58 and ~117 steps)
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(ActivationStore, "iter_batches", interrupting)
    with pytest.raises(KeyboardInterrupt):
        fit_saes(store, HOOKS, CFG, out_dir=tmp_path, progress=False)
    assert any((tmp_path / "sae_checkpoints").rglob("sae_weights.safetensors"))
    monkeypatch.setattr(ActivationStore, "iter_batches", real_iter)
    resumed = fit_saes(store, HOOKS, CFG, out_dir=tmp_path, progress=False)
    for h in HOOKS:
        torch.testing.assert_close(resumed.saes[h].W_dec, ref.saes[h].W_dec, rtol=0, atol=0)
    assert load_fitted_saes(tmp_path / "saes").hooks == HOOKS


@pytest.mark.parametrize("arch", ["standard", "jumprelu"])
def test_other_architectures_train(arch):
    cfg = SAEFitConfig(architecture=arch, expansion_factor=2, training_samples=4096, batch_size=256, device="cpu")
    fit = fit_saes(sparse_store(n=1000), HOOKS[:1], cfg, progress=False)
    assert fit.saes[HOOKS[0]].cfg.architecture() == arch


def test_config_validation_and_missing_hook(tmp_path):
    with pytest.raises((ValueError, TypeCheckError), match="gated"):
        SAEFitConfig(architecture="gated")
    with pytest.raises(ValueError, match="below one batch"):
        SAEFitConfig(training_samples=10, batch_size=512)
    with pytest.raises(ValueError, match="k=100 exceeds d_sae=64"):
        SAEFitConfig(k=100, expansion_factor=4).sae_config(16, "h", "m", "cpu")
    with pytest.raises(KeyError, match="were not captured"):
        fit_saes(sparse_store(n=300), ["blocks.5.hook_resid_post"], CFG, progress=False)
    with pytest.raises(FileNotFoundError, match="fit.json missing"):
        load_fitted_saes(tmp_path)
    with pytest.raises(ValueError, match="expects d_in=16"):
        reconstruction_stats(
            fit_saes(sparse_store(n=600), HOOKS[:1], CFG, progress=False).saes[HOOKS[0]], torch.zeros(3, 5)
        )
