"""An SAE-intervention export can never be loaded as the original model by accident.

Plain ``transformers`` refuses it without ``trust_remote_code=True`` and, with it, runs the shipped
``intervention_modeling.py`` (logits and greedy answers equal ``load_model``'s: the hidden secrets
stay hidden); a damaged, mismatched or not self-contained ``intervention/`` folder and non-integer
latents fail at once, naming the file or value. (Every architecture is checked by the export's
own reload check in ``test_architectures.py``-style runs; here the trained secrets model.)
"""

from __future__ import annotations

import json
import shutil
from typing import get_args

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sae_unlearn import intervention_runtime as runtime
from sae_unlearn.evaluation.knowledge import greedy_answers, states_target
from sae_unlearn.export import export_model
from sae_unlearn.interventions import RULES, InterventionRule, SAEIntervention
from sae_unlearn.models import load_model, zoo_model_path
from sae_unlearn.pipeline import unlearn
from sae_unlearn.unlearning import METHODS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exported(stage, tmp_path_factory):
    """``(in-memory DSG model, export folder, card)``."""
    data, st = stage
    model, _ = unlearn("dsg", zoo_model_path("secrets"), data, st, device="cpu", progress=False)
    out = tmp_path_factory.mktemp("iv_export") / "dsg"
    card = export_model(model, out, {"method": "dsg"})
    return model, out, card


def _plain_answers(plain, tok, prompts, max_new_tokens=8):
    """Greedy answers of a plain transformers model, batched with left padding as ``greedy_answers``."""
    side, tok.padding_side = tok.padding_side, "left"
    try:
        enc = tok(prompts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    gen = plain.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_plain_transformers_refuses_an_intervention_export_without_trust_remote_code(exported):
    _, out, card = exported
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "sae_unlearn_llama" and config["auto_map"] == runtime.AUTO_MAP
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    md = (out / "UNLEARNING_CARD.md").read_text()
    assert "trust_remote_code=True" in md and "| vllm | not supported" in md and "| lm_eval |" in md
    assert card["plain_transformers_max_logit_diff"] <= 1e-4


def test_trust_remote_code_gives_the_unlearned_model_and_hides_what_it_hides(stage, exported, secrets_model):
    data, _ = stage
    _, out, _ = exported
    loaded = load_model(out, device="cpu")
    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, trust_remote_code=True).eval()
    assert type(plain).__name__ == "SAEUnlearnLlamaForCausalLM"
    forget = data.split.forget
    ids = loaded.tokenize([q.prompt for q in forget[:6]]).input_ids
    with torch.no_grad():
        got = plain(input_ids=ids).logits
    torch.testing.assert_close(got, loaded.logits(ids), rtol=0, atol=1e-4)
    assert not torch.allclose(got, secrets_model.logits(ids), atol=1e-2)
    # greedy answers (KV cache, left padding) are load_model's, so the secrets it hides stay hidden
    prompts = [q.prompt for q in forget]
    unlearned = greedy_answers(loaded, prompts, max_new_tokens=8)
    assert _plain_answers(plain, loaded.tokenizer, prompts) == unlearned
    original = greedy_answers(secrets_model, prompts, max_new_tokens=8)
    hidden = [i for i, q in enumerate(forget) if states_target(original[i], q.answer)]
    hidden = [i for i in hidden if not states_target(unlearned[i], forget[i].answer)]
    assert hidden, "the DSG export hides no secret the original states"


def test_save_pretrained_of_the_plain_model_is_an_intervention_export_again(exported, tmp_path):
    _, out, _ = exported
    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, trust_remote_code=True)
    plain.save_pretrained(tmp_path / "copy")
    AutoTokenizer.from_pretrained(out, trust_remote_code=True).save_pretrained(tmp_path / "copy")
    assert (tmp_path / "copy" / "intervention" / "intervention.json").is_file()
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "copy", local_files_only=True)
    assert load_model(tmp_path / "copy", device="cpu").intervention is not None


def _intervention_copy(out, tmp_path):
    folder = tmp_path / "intervention"
    shutil.copytree(out / "intervention", folder)
    return folder, json.loads((folder / "intervention.json").read_text())


def _write(folder, spec):
    (folder / "intervention.json").write_text(json.dumps(spec))


def test_a_damaged_or_mismatched_intervention_folder_names_the_file(exported, tmp_path):
    _, out, _ = exported
    folder, spec = _intervention_copy(out, tmp_path)
    (folder / "intervention.json").write_text('{"hook": "blocks.1.hook_resid_po')
    with pytest.raises(ValueError, match=r"intervention.json is corrupt"):
        SAEIntervention.load(folder)
    _write(folder, {**spec, "hook": "blocks.0.hook_resid_post"})
    with pytest.raises(ValueError, match=r"intervention.json names hook 'blocks.0.hook_resid_post' but its SAE"):
        SAEIntervention.load(folder)
    _write(folder, {**spec, "d_sae": 7})
    with pytest.raises(ValueError, match=r"intervention.json says d_sae=7 but its SAE has d_sae="):
        SAEIntervention.load(folder)
    _write(folder, spec)
    weights = folder / "sae" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(OSError, match=r"sae_weights.safetensors is damaged"):
        SAEIntervention.load(folder)


def test_an_intervention_at_a_hook_the_model_lacks_names_the_file(exported, tmp_path):
    _, out, _ = exported
    copy = tmp_path / "export"
    shutil.copytree(out, copy)
    spec = json.loads((copy / "intervention" / "intervention.json").read_text())
    cfg_path = copy / "intervention" / "sae" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metadata"]["hook_name"] = "blocks.9.hook_resid_post"
    cfg_path.write_text(json.dumps(cfg))
    _write(copy / "intervention", {**spec, "hook": "blocks.9.hook_resid_post"})
    with pytest.raises(KeyError, match=r"intervention.json names a hook this model lacks"):
        load_model(copy, device="cpu")
    with pytest.raises(ValueError, match=r"intervention.json names hook 'blocks.9.hook_resid_post' but config.json"):
        AutoModelForCausalLM.from_pretrained(copy, local_files_only=True, trust_remote_code=True)


@pytest.mark.parametrize("entry", ["../../other", "/abs/sae", "link"])
def test_an_sae_outside_the_export_is_refused(exported, tmp_path, entry):
    _, out, _ = exported
    folder, spec = _intervention_copy(out, tmp_path)
    if entry == "link":
        shutil.copytree(folder / "sae", tmp_path / "elsewhere")
        (folder / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _write(folder, {**spec, "sae": entry})
    with pytest.raises(ValueError, match=r"intervention.json: 'sae' = .*self-contained"):
        SAEIntervention.load(folder)


def test_latent_indices_must_be_integers_in_range(stage, no_runtime_typecheck):
    _, st = stage
    hook = st.selection.hook
    sae = st.fit.saes[hook]
    d_sae = int(sae.cfg.d_sae)
    for bad in ([1.7], [True]):
        with pytest.raises(ValueError, match=rf"latents holds {bad[0]!r} .*d_sae={d_sae}"):
            SAEIntervention(hook, sae, "zero", bad, [0.0])
    clamp = METHODS["clamp_static"]
    with pytest.raises(ValueError, match=rf"ranked \[{d_sae + 5}\] are out of range.*d_sae={d_sae}"):
        clamp(clamp.from_settings({"hook": hook}), sae=sae, ranked=[d_sae + 5])
    with pytest.raises(ValueError, match=rf"ranked holds 1.7 .*d_sae={d_sae}"):
        clamp(clamp.from_settings({"hook": hook}), sae=sae, ranked=[1.7])


def test_an_export_the_shipped_code_cannot_serve_is_refused_before_writing(exported, tmp_path):
    model, _, _ = exported
    cfg = model.intervention.sae.cfg
    old, cfg.normalize_activations = cfg.normalize_activations, "layer_norm"
    try:
        with pytest.raises(ValueError, match="normalize_activations='layer_norm'"):
            export_model(model, tmp_path / "x", {"method": "dsg"})
    finally:
        cfg.normalize_activations = old
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match=r"hook 'blocks.1.mlp.hook_post'.*residual stream"):
        runtime.parse_site("blocks.1.mlp.hook_post")


def test_the_runtime_lists_the_rules_the_toolkit_names():
    assert get_args(InterventionRule) == RULES == runtime.RULES


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_the_shipped_sae_code_reproduces_sae_lens(arch, tmp_path):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    kinds = {
        "standard": lambda: StandardSAE(StandardSAEConfig(d_in=16, d_sae=48)),
        "jumprelu": lambda: JumpReLUSAE(JumpReLUSAEConfig(d_in=16, d_sae=48)),
        "topk": lambda: TopKSAE(TopKSAEConfig(d_in=16, d_sae=48, k=6)),
    }
    sae = kinds[arch]()
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sae.save_model(tmp_path)
    coder = runtime.SparseCoder.load(tmp_path)
    x = torch.randn(2, 5, 16)
    f = sae.encode(x)
    assert bool((f > 0).any())
    torch.testing.assert_close(coder.encode(x), f, rtol=0, atol=1e-6)
    torch.testing.assert_close(coder.decode(f), sae.decode(f), rtol=0, atol=1e-6)
