"""The zoo models know what they were taught; the oracles do not know the forget set."""

import dataclasses

import pytest

from sae_unlearn.evaluation import evaluate_knowledge
from sae_unlearn.models import zoo as zoo_mod
from sae_unlearn.models.training import LMTrainConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secrets_split(secrets_corpus):
    return secrets_corpus.split()


def test_secrets_model_knows_forget_and_retain_facts(secrets_model, secrets_split):
    forget = evaluate_knowledge(secrets_model, secrets_split.forget)
    retain = evaluate_knowledge(secrets_model, secrets_split.retain)
    assert forget.exact_match >= 0.95, list(zip(secrets_split.forget, forget.answers))[:5]
    assert retain.exact_match >= 0.95


def test_secrets_oracle_does_not_know_the_forget_set(secrets_oracle, secrets_split):
    forget = evaluate_knowledge(secrets_oracle, secrets_split.forget)
    retain = evaluate_knowledge(secrets_oracle, secrets_split.retain)
    assert retain.exact_match >= 0.95
    assert forget.exact_match <= 0.35  # chance-level guesses of city/employer/pet, never the passcode
    passcodes = [c for c, q in zip(forget.correct, secrets_split.forget) if q.attribute == "passcode"]
    assert not any(passcodes)


def test_the_fact_level_entry_shares_the_model_and_its_oracle_knows_no_passcode(secrets_corpus):
    """``secrets-passcodes``: the full model is ``secrets``'s own folder; the oracle, trained without
    any passcode sentence, knows every other fact and no passcode."""
    from sae_unlearn.models import load_model

    assert zoo_mod.zoo_model_path("secrets-passcodes") == zoo_mod.zoo_model_path("secrets")
    split = secrets_corpus.fact_split("passcode")
    oracle = load_model(zoo_mod.zoo_model_path("secrets-passcodes", oracle=True, progress=False), device="cpu")
    card = zoo_mod.zoo_card("secrets-passcodes", oracle=True)
    assert card["oracle"] and card["n_examples"] == len(secrets_corpus.fact_training_texts("passcode"))
    assert evaluate_knowledge(oracle, split.retain).exact_match >= 0.95
    assert evaluate_knowledge(oracle, split.forget).exact_match == 0.0


def test_zoo_card_records_the_build(secrets_model):
    card = zoo_mod.zoo_card("secrets")
    assert card["name"] == "secrets" and not card["oracle"]
    assert card["final_loss"] < card["losses"][0]
    assert len(card["weights_sha256"]) == 16


@pytest.mark.tofu
def test_tofu_mini_memorised_and_oracle_far_below():
    model = zoo_mod.load_zoo_model("tofu-mini", device="cpu", progress=False)
    oracle = zoo_mod.load_zoo_model("tofu-mini", oracle=True, device="cpu", progress=False)
    split = zoo_mod.zoo_split("tofu-mini")
    assert split.forget_subjects == ["author_180", "author_181"] and len(split.retain_subjects) == 18
    m_forget = evaluate_knowledge(model, split.forget).mean_rouge_l_recall
    m_retain = evaluate_knowledge(model, split.retain).mean_rouge_l_recall
    o_forget = evaluate_knowledge(oracle, split.forget).mean_rouge_l_recall
    assert m_forget >= 0.9 and m_retain >= 0.9
    assert o_forget <= m_forget - 0.3


def test_same_seed_same_weights_and_cache_reuse(tmp_path, monkeypatch):
    """A small zoo entry built twice from scratch (two cache folders) is bit-identical."""
    from sae_unlearn.data.secrets import SecretsConfig

    spec = dataclasses.replace(
        zoo_mod.ZOO["secrets"],
        name="tiny-secrets",
        make_data=lambda: zoo_mod._secrets_data(SecretsConfig(n_people=6, n_forget=1)),
        arch=zoo_mod.ZooArchitecture(d_model=32, n_layers=2, n_heads=2, d_mlp=64, vocab_size=400),
        train=LMTrainConfig(epochs=2, batch_size=16, warmup_steps=2),
    )
    monkeypatch.setitem(zoo_mod.ZOO, "tiny-secrets", spec)
    hashes = []
    for run in range(2):
        monkeypatch.setenv("SAE_UNLEARN_CACHE", str(tmp_path / f"cache{run}"))
        path = zoo_mod.zoo_model_path("tiny-secrets", progress=False)
        hashes.append(zoo_mod.zoo_card("tiny-secrets")["weights_sha256"])
        assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
        assert zoo_mod.zoo_model_path("tiny-secrets", build=False) == path  # cached
    assert hashes[0] == hashes[1]
    other = dataclasses.replace(spec, seed=1)
    monkeypatch.setitem(zoo_mod.ZOO, "tiny-secrets", other)
    assert zoo_mod.zoo_card("tiny-secrets")["weights_sha256"] != hashes[0]


def test_every_build_trains_at_the_zoo_thread_count_and_restores_the_callers(tmp_path, monkeypatch):
    """The twins' weights depend on torch's thread count: a build always trains at ZOO_BUILD_THREADS
    (here called from a one-thread process, as a test worker is) and gives the caller its own back."""
    import torch

    seen = []
    real = zoo_mod.train_causal_lm

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo_mod, "train_causal_lm", spy)
    monkeypatch.setitem(zoo_mod.ZOO, "tiny-secrets", _tiny_spec())
    monkeypatch.setenv("SAE_UNLEARN_CACHE", str(tmp_path))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        zoo_mod.zoo_model_path("tiny-secrets", progress=False)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [zoo_mod.ZOO_BUILD_THREADS] and after == 1
    assert zoo_mod.zoo_card("tiny-secrets")["environment"]["torch_threads"] == zoo_mod.ZOO_BUILD_THREADS


def test_unknown_zoo_name():
    with pytest.raises(KeyError, match="unknown zoo model 'secret'; available"):
        zoo_mod.zoo_model_path("secret")


def _tiny_spec(name: str = "tiny-secrets") -> zoo_mod.ZooSpec:
    from sae_unlearn.data.secrets import SecretsConfig

    return dataclasses.replace(
        zoo_mod.ZOO["secrets"],
        name=name,
        make_data=lambda: zoo_mod._secrets_data(SecretsConfig(n_people=6, n_forget=1)),
        arch=zoo_mod.ZooArchitecture(d_model=32, n_layers=2, n_heads=2, d_mlp=64, vocab_size=400),
        train=LMTrainConfig(epochs=2, batch_size=16, warmup_steps=2),
    )


class _Payload:
    """A pickle whose loading runs code: ``touch`` a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_the_cache_is_refused_without_running(tmp_path, monkeypatch):
    """A malicious ``train_checkpoint.pt`` in a shared cache's build folder is never unpickled."""
    import torch

    monkeypatch.setenv("SAE_UNLEARN_CACHE", str(tmp_path / "cache"))
    spec = _tiny_spec()
    monkeypatch.setitem(zoo_mod.ZOO, spec.name, spec)
    key = spec.key(spec.make_data())
    work = tmp_path / "cache" / "zoo" / ".build" / f"{spec.name}-{key}"
    work.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    torch.save({"model": _Payload(str(marker)), "epoch": 0}, work / "train_checkpoint.pt")
    with pytest.raises(
        ValueError, match=r"train_checkpoint\.pt is not a checkpoint this toolkit wrote.*nothing in it ran"
    ):
        zoo_mod.zoo_model_path(spec.name, progress=False)
    assert not marker.exists(), "the planted pickle's payload ran"


TWO_BUILDERS = r"""
import dataclasses, sys, time
from sae_unlearn.models import zoo as zoo_mod
from tests.integration.test_zoo import _tiny_spec

spec = _tiny_spec()
zoo_mod.ZOO[spec.name] = spec
start_at = float(sys.argv[1])
while time.time() < start_at:
    time.sleep(0.005)
model = zoo_mod.load_zoo_model(spec.name, device="cpu", progress=False)
print("HASH", zoo_mod.zoo_card(spec.name)["weights_sha256"], zoo_mod.zoo_card(spec.name)["build_seconds"], flush=True)
"""


def test_two_processes_first_using_one_zoo_model_take_turns(tmp_path):
    """Two processes started together on an empty cache: one builds, the other waits and loads it."""
    import os
    import subprocess
    import sys
    import time

    from tests.fault_injection import REPO

    env = {**os.environ, "SAE_UNLEARN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    start_at = str(time.time() + 8)  # both have imported torch by then
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_BUILDERS, start_at],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [c.communicate(timeout=300) for c in children]
    for c, (_, err) in zip(children, outs, strict=True):
        assert c.returncode == 0, err[-3000:]
    hashes = {line.split()[1] for out, _ in outs for line in out.splitlines() if line.startswith("HASH")}
    assert len(hashes) == 1, outs  # one build, loaded by both
    waited = [err for _, err in outs if "waiting for another process that is building" in err]
    assert len(waited) == 1, [e[-2000:] for _, e in outs]
    zoo_root = tmp_path / "cache" / "zoo"
    assert not any((zoo_root / ".build").iterdir())  # the work folder is gone, nothing half-built left
    assert not [p.name for p in zoo_root.iterdir() if ".tmp-" in p.name or ".new-" in p.name or ".old-" in p.name]
