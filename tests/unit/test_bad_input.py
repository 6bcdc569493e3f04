"""Plausible mistakes fail at once with a message naming the value and the fix (no model needed).

The checks are what a user meets at run time, where no jaxtyping/beartype is active; the
``no_runtime_typecheck`` fixture switches the test-time shape checks off so the library's own
errors are the ones tested.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sae_unlearn.attacks import RelearnConfig
from sae_unlearn.capture import ActivationBatch, ActivationStore
from sae_unlearn.saes import SAEFitConfig, fit_saes
from sae_unlearn.saes.loading import SAEMismatchError
from sae_unlearn.selection import latent_stats, select_latents
from sae_unlearn.selection.layers import select_layer_and_latents
from sae_unlearn.unlearning import SSPUConfig, UnlearningConfig
from sae_unlearn.utils import as_text_list, check_forget_retain, run_environment
from sae_unlearn.verification import VerifyConfig
from tests.unit.test_sae_fit import HOOKS, sparse_store


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": "20"}, TypeError, r"UnlearningConfig\.steps='20' must be an int \(got str\); e\.g\. steps=20"),
        ({"alpha": math.nan}, ValueError, r"alpha=nan must be a finite number"),
        ({"lr": math.inf}, ValueError, r"lr=inf must be a finite number"),
        ({"alpha": -1.0}, ValueError, r"alpha=-1.0 \(the retain loss weight\) must be >= 0"),
        ({"params": "model.layers.0.mlp.down_proj.weight"}, TypeError, r"is one string; pass a list"),
        ({"steering_coef": 0.0}, ValueError, r"steering_coef=0.0 must be > 0"),
        ({"batch_size": True}, TypeError, r"batch_size=True must be an int"),
    ],
)
def test_unlearning_config_rejects_bad_values_naming_the_field(no_runtime_typecheck, kwargs, error, message):
    with pytest.raises(error, match=message):
        UnlearningConfig(**kwargs)


def test_nan_is_not_blamed_on_another_setting(no_runtime_typecheck):
    with pytest.raises(ValueError, match="alpha") as info:
        SSPUConfig(alpha=math.nan)
    assert "lr" not in str(info.value)
    with pytest.raises(ValueError, match="reg_weight=nan must be a finite number"):
        SSPUConfig(reg_weight=math.nan)
    with pytest.raises(ValueError, match="lr=nan must be a finite number"):
        SAEFitConfig(lr=math.nan)


def test_verify_config_renamed_threshold_and_checks_steps(no_runtime_typecheck):
    with pytest.raises(ValueError, match=r"steps=\(-5,\): give non-negative"):
        VerifyConfig(attacks={"relearn": {"steps": (-5,)}})
    with pytest.raises(TypeError, match=r"relearn_steps=\.\.\.\) is gone.*attacks=\{'relearn'"):
        VerifyConfig(relearn_steps=(0, 10))  # the flat name of earlier releases names its new place
    with pytest.raises(ValueError, match=r"lrs=\(0.0, 0.001\): every learning rate must be > 0"):
        VerifyConfig(attacks={"relearn": {"lrs": (0.0, 1e-3)}})
    with pytest.raises(ValueError, match=r"lr=-0.1 must be > 0"):
        RelearnConfig(lr=-0.1)
    with pytest.raises(ValueError, match=r"unknown setting 'setps' for attack 'relearn'; did you mean 'steps'"):
        VerifyConfig(attacks={"relearn": {"setps": (0, 10)}})
    with pytest.raises(ValueError, match=r"unknown attack 'probes'; did you mean 'probe'"):
        VerifyConfig(attacks={"probes": {}})
    with pytest.raises(TypeError, match=r"attacks\['probe'\]=5: give a ProbeConfig"):
        VerifyConfig(attacks={"probe": 5})
    with pytest.raises(ValueError, match=r"skip=\('prompt',\): unknown attack"):
        VerifyConfig(skip=("prompt",))
    with pytest.warns(DeprecationWarning, match="forget_quality_threshold"):
        cfg = VerifyConfig(alpha=0.01)
    assert cfg.forget_quality_threshold == 0.01 and "alpha" not in cfg.to_dict()
    with pytest.raises(ValueError, match=r"forget_quality_threshold=2.0 must be in \(0, 1\)"):
        VerifyConfig(forget_quality_threshold=2.0)


def test_a_string_where_texts_are_expected():
    with pytest.raises(TypeError, match=r"forget texts is a single string \('Q: Where'\).*Pass a list"):
        check_forget_retain("Q: Where", ["a"])
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        as_text_list(["a", 3])


@pytest.mark.parametrize(
    ("forget", "retain", "message"),
    [
        ([], ["a"], "the forget set is empty"),
        ([""], ["a"], "1 forget text.* empty or whitespace only"),
        (["  ", "x"], ["a"], "empty or whitespace only"),
        (["a", "b"], ["b", "c"], r"1 text\(s\) are in both the forget and the retain set \(e\.g\. 'b'\)"),
        (["a"], ["a"], "in both the forget and the retain set"),
    ],
)
def test_forget_and_retain_sets_are_checked(forget, retain, message):
    with pytest.raises(ValueError, match=message):
        check_forget_retain(forget, retain)


def _codes(n_forget: int = 50, n_retain: int = 50, d_sae: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    f = torch.rand(n_forget, d_sae, generator=g) * (torch.rand(n_forget, d_sae, generator=g) < 0.3)
    r = torch.rand(n_retain, d_sae, generator=g) * (torch.rand(n_retain, d_sae, generator=g) < 0.3)
    f[:, :3] += 2.0  # three forget-specific latents
    return f, r


def test_more_latents_than_the_sae_has_is_an_error():
    stats = latent_stats(*_codes())
    with pytest.raises(ValueError, match=r"n_latents=40 is more than the SAE has latents \(d_sae=32\)"):
        select_latents(stats, n_latents=40)


def test_only_forget_specific_latents_become_relevant():
    f, r = _codes()
    r[:, 3:] = f[:, 3:] * 3  # every other latent is *more* active on retain data
    stats = latent_stats(f, r)
    with pytest.warns(UserWarning, match="only 3 latents .* are forget-specific"):
        sel = select_latents(stats, n_latents=10, scorer="mean_diff")
    assert sorted(sel.relevant.tolist()) == [0, 1, 2] and bool((sel.relevant_scores > 0).all())


def test_k_is_a_deprecated_name_of_n_latents():
    stats = latent_stats(*_codes())
    with pytest.warns(DeprecationWarning, match="k= is deprecated; use n_latents="):
        old = select_latents(stats, k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = select_latents(stats, n_latents=3)
    assert torch.equal(old.relevant, new.relevant)
    with pytest.raises(TypeError, match="not both"):
        select_latents(stats, n_latents=5, k=3)


@pytest.fixture(scope="module")
def small_fit():
    store = sparse_store(n=1500)
    cfg = SAEFitConfig(expansion_factor=2, k=4, training_samples=4096, batch_size=256, device="cpu")
    return store, fit_saes(store, HOOKS, cfg, model_name="synthetic", progress=False)


def test_integer_forget_mask_is_refused(no_runtime_typecheck, small_fit):
    store, fit = small_fit
    mask = (store.seq_index % 2).long()
    with pytest.raises(TypeError, match=r"forget_mask must be a bool tensor, not torch.int64.*mask.bool\(\)"):
        select_layer_and_latents(fit.saes, store, mask, n_latents=4)
    with pytest.raises(ValueError, match="give one flag per row"):
        select_layer_and_latents(fit.saes, store, mask.bool()[:-1], n_latents=4)


def test_wrong_sae_for_the_hook_width_or_model(no_runtime_typecheck, small_fit):
    store, fit = small_fit
    mask = store.seq_index % 2 == 0
    swapped = {HOOKS[0]: fit.saes[HOOKS[1]], HOOKS[1]: fit.saes[HOOKS[0]]}
    with pytest.raises(SAEMismatchError, match=r"given for 'blocks.0.hook_resid_post' was trained on 'blocks.1"):
        select_layer_and_latents(swapped, store, mask, n_latents=4)
    narrow = sparse_store(n=600, d=8)
    narrow_fit = fit_saes(
        narrow, HOOKS[:1], SAEFitConfig(expansion_factor=2, k=4, training_samples=1024, batch_size=256), progress=False
    )
    with pytest.raises(SAEMismatchError, match=r"expects d_in=8 but the activations there are 16 wide"):
        select_layer_and_latents(narrow_fit.saes, store, mask, n_latents=4)
    with pytest.raises(SAEMismatchError, match=r"trained on model 'synthetic', not 'secrets'"):
        select_layer_and_latents(fit.saes, store, mask, n_latents=4, model_name="secrets")


def test_diverging_sae_fit_stops_and_saves_nothing(no_runtime_typecheck, tmp_path):
    store = sparse_store(n=1500)
    store.shard(0)[HOOKS[0]] *= 1e30  # activations so large that the first step overflows
    cfg = SAEFitConfig(expansion_factor=2, k=4, training_samples=4096, batch_size=256, lr=1e3, device="cpu")
    with pytest.raises(FloatingPointError, match=r"SAE at 'blocks.0.hook_resid_post' has non-finite weights.*lr"):
        fit_saes(store, HOOKS, cfg, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "saes").exists()


def test_nan_activations_are_refused_before_fitting(small_fit):
    store = sparse_store(n=600)
    store.shard(0)[HOOKS[1]][5, 0] = float("nan")
    with pytest.raises(ValueError, match="activations at 'blocks.1.hook_resid_post' hold NaN"):
        fit_saes(store, HOOKS, SAEFitConfig(training_samples=1024, batch_size=256), progress=False)


def test_run_environment_records_the_thread_count():
    env = run_environment()
    assert env["torch_threads"] == torch.get_num_threads() and env["torch_version"] == torch.__version__


def test_store_row_mask_check(no_runtime_typecheck):
    ids = torch.zeros(4, dtype=torch.long)
    batch = ActivationBatch({"h": torch.zeros(4, 2)}, ids, torch.arange(4), torch.ones(4, dtype=torch.long))
    store = ActivationStore.from_batches([batch], ["h"])
    assert store.check_row_mask(torch.tensor([True, False, True, False])).sum() == 2
    with pytest.raises(TypeError, match="not torch.float32"):
        store.check_row_mask(torch.ones(4))


def test_a_transformers_release_that_breaks_the_bridge_cache_is_refused(monkeypatch):
    """transformers 5.24 with TransformerLens 3 generates wrong answers silently: refused at load."""
    import transformer_lens
    import transformers

    from sae_unlearn.models import load_model
    from sae_unlearn.models.loading import check_library_versions

    check_library_versions()  # the installed pair is a tested one
    monkeypatch.setattr(transformers, "__version__", "5.24.0")
    monkeypatch.setattr(transformer_lens, "__version__", "3.9.0", raising=False)
    expected = r'transformers 5\.24\.0 with transformer-lens 3\.9\.0.*"transformers<5\.24"'
    with pytest.raises(RuntimeError, match=expected):
        load_model("/nonexistent/model")  # refused before any file is read
    monkeypatch.setattr(transformer_lens, "__version__", "4.3.0", raising=False)
    check_library_versions()
