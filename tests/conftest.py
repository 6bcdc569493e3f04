"""Test tiers: unit (no model), integration (bundled zoo models), tofu, online, gpu.

Zoo models are built once per machine and cached (``$SAE_UNLEARN_CACHE``, default
``~/.cache/sae_unlearn``); the session fixtures below load them once per test run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TOFU_DIR = REPO.parent / "shared" / "data" / "tofu"
if "SAE_UNLEARN_TOFU" not in os.environ and (TOFU_DIR / "tofu.jsonl").is_file():
    os.environ["SAE_UNLEARN_TOFU"] = str(TOFU_DIR)
HAS_TOFU = Path(os.environ.get("SAE_UNLEARN_TOFU", TOFU_DIR), "tofu.jsonl").is_file()
ONLINE = os.environ.get("SAE_UNLEARN_ONLINE") == "1"


def pytest_collection_modifyitems(config, items):
    skip_tofu = pytest.mark.skip(reason=f"TOFU data not found at {TOFU_DIR} (set SAE_UNLEARN_TOFU)")
    skip_online = pytest.mark.skip(reason="needs the Hugging Face hub; set SAE_UNLEARN_ONLINE=1 when online")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none visible")
    for item in items:
        # Notebooks are collected by nbmake; the TOFU study needs the TOFU data like the tofu tests.
        is_tofu_notebook = item.path.suffix == ".ipynb" and "tofu" in item.path.name
        if ("tofu" in item.keywords or is_tofu_notebook) and not HAS_TOFU:
            item.add_marker(skip_tofu)
        if "online" in item.keywords and not ONLINE:
            item.add_marker(skip_online)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def secrets_model():
    from sae_unlearn.models import load_zoo_model

    return load_zoo_model("secrets", device="cpu", progress=False)


@pytest.fixture(scope="session")
def secrets_oracle():
    from sae_unlearn.models import load_zoo_model

    return load_zoo_model("secrets", oracle=True, device="cpu", progress=False)


@pytest.fixture(scope="session")
def secrets_corpus():
    from sae_unlearn.data import SecretsCorpus

    return SecretsCorpus()


@pytest.fixture(scope="session")
def stage(secrets_model, tmp_path_factory):
    """``(PipelineData, SAEStage)`` of the secrets model with quickly fitted SAEs (shared by modules)."""
    from sae_unlearn.pipeline import pipeline_data, sae_stage
    from sae_unlearn.saes import SAEFitConfig
    from sae_unlearn.utils import cache_dir

    data = pipeline_data("secrets")
    cfg = SAEFitConfig(training_samples=60_000)
    # The notebooks fit the same SAEs into this shared folder; whichever runs first, the other reuses it.
    out = cache_dir() / "runs" / "secrets"
    return data, sae_stage(secrets_model, data, out, cfg, n_latents=64, progress=False)


@pytest.fixture
def no_runtime_typecheck():
    """Switch the test-time jaxtyping/beartype checks off for one test, so the library's own
    run-time errors (what a user meets) are the ones tested, not the annotation checker's."""
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
