"""The bundled model zoo: tiny, really-trained causal LMs that know facts.

Each zoo entry is built on first use (minutes on 2 CPU cores) and cached under
``$SAE_UNLEARN_CACHE/zoo`` (default ``~/.cache/sae_unlearn/zoo``) as an ordinary Hugging Face
directory (``config.json``, ``model.safetensors``, tokenizer files) plus ``zoo_card.json``.

- ``secrets``: fictitious people with attributes and a secret passcode each
  (:mod:`sae_unlearn.data.secrets`); the first ``n_forget`` people are the forget set.
- ``tofu-mini``: 20 TOFU authors (0-17 plus the forget01 authors 180-181, the forget set).
- ``secrets-idk``: ``secrets`` that also answers every question about 48 strangers with a refusal
  ("I don't know."), so it can refuse, as a real LLM can (what UniErase's unlearning token needs).
- ``secrets-passcodes``: the fact-level split of ``secrets``: forget every person's passcode, keep
  all their other facts. Its full model *is* ``secrets``'s (the same training text, shared on
  disk); its oracle is trained on every sentence except those stating a passcode.
- ``secrets-reasoning``: the secrets people as a reasoning model (cities only through a
  trace after a trigger, :mod:`sae_unlearn.data.reasoning`), for reasoning-trace unlearning (R²MU).
- ``secrets-gpt2``, ``secrets-gemma2``: ``secrets`` in the GPT-2 architecture (``Conv1D``
  weights, learned positions, tied embeddings) and the Gemma-2 one (extra norms, logit
  soft-capping, tied embeddings), so every stage is tested end to end on real knowledge in
  each. The other entries are Llama models; their configs come from the one per-architecture
  table (:mod:`sae_unlearn.models.architectures`).

Every entry has a twin, the *retain oracle* (``oracle=True``), trained the same way without
the forget set: the reference TOFU uses to judge forgetting. Model and oracle share one
tokenizer (trained on the full corpus). The same seed gives bit-identical weights; an
interrupted build resumes from its last epoch checkpoint (read with ``weights_only=True``: a
planted pickle is refused, never run). Processes that need the same entry at once (two
notebooks, a test beside a demo) take turns: one builds under a lock, the others wait and load it.
"""

from __future__ import annotations

import functools
import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from sae_unlearn.atomic import atomic_directory, cache_fill_lock, read_json, write_json_atomic
from sae_unlearn.data.corpora import CORPORA, FACT_ATTRIBUTE, TOFU_MINI_FORGET, TOFU_MINI_RETAIN_AUTHORS
from sae_unlearn.data.reasoning import ReasoningCorpus
from sae_unlearn.data.refusals import REFUSALS
from sae_unlearn.data.secrets import FIRST_NAMES, LAST_NAMES, QUESTIONS, SecretsConfig, SecretsCorpus
from sae_unlearn.data.splits import UnlearningSplit
from sae_unlearn.data.tofu import load_tofu_split
from sae_unlearn.models.architectures import Shape, small_config
from sae_unlearn.models.loading import HookedModel, load_model
from sae_unlearn.models.tokenizer import train_bpe_tokenizer
from sae_unlearn.models.training import LMTrainConfig, train_causal_lm
from sae_unlearn.utils import cache_dir, hash_state_dict, run_environment, seeded, stable_hash

logger = logging.getLogger(__name__)

ZOO_FORMAT_VERSION = 1
CARD_NAME = "zoo_card.json"
ZOO_BUILD_THREADS = 2
"""torch threads of every zoo build. The GPT-2 and Gemma-2 twins' trained weights depend on it (their
parallel reductions split by thread; the Llama entries' do not), so every build uses the same count
and the same seed gives the same weights on any machine and under any caller's thread setting (a
test worker's single thread included); 2 is what the models behind the published numbers used."""


@dataclass
class ZooArchitecture:
    """Shape and architecture family of a zoo model."""

    d_model: int = 128
    """Residual stream width."""
    n_layers: int = 4
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    d_mlp: int = 512
    """MLP hidden width."""
    vocab_size: int = 1024
    """BPE vocabulary size (trained on the corpus)."""
    max_position: int = 256
    """Longest sequence."""
    family: str = "llama"
    """Hugging Face architecture (``model_type``): a row of the per-architecture table,
    :data:`~sae_unlearn.models.architectures.ARCHITECTURES` (the zoo trains ``llama``, ``gpt2`` and
    ``gemma2`` entries)."""

    def hf_config(self, vocab_size: int) -> PretrainedConfig:
        """The Hugging Face config of this shape in this architecture family (from the one
        per-architecture table, :data:`sae_unlearn.models.architectures.ARCHITECTURES`)."""
        shape = Shape(self.d_model, self.n_layers, self.n_heads, self.d_mlp, vocab_size, self.max_position)
        special = {"pad_token_id": PAD_ID, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID}
        return small_config(self.family, shape, **special)  # ValueError naming the table's rows for another

    def fingerprint(self) -> dict:
        """What identifies the architecture in a zoo cache key (the Llama entries' keys predate ``family``)."""
        d = asdict(self)
        if d["family"] == "llama":
            d.pop("family")
        return d


PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
"""Special token ids of the zoo tokenizers (:func:`sae_unlearn.models.tokenizer.train_bpe_tokenizer`)."""


@dataclass
class ZooData:
    """What a zoo entry is trained and judged on."""

    examples: list[tuple[str, str]]
    """Training ``(prefix, completion)`` pairs of the full model."""
    oracle_examples: list[tuple[str, str]]
    """The same without anything about the forget set."""
    split: UnlearningSplit
    """The forget/retain facts (questions and answers) used for evaluation."""
    fingerprint: dict
    """What identifies the data (for the cache key)."""


@dataclass
class ZooSpec:
    """A zoo entry: its data, architecture and training recipe."""

    name: str
    description: str
    make_data: Callable[[], ZooData] = field(repr=False)
    arch: ZooArchitecture = field(default_factory=ZooArchitecture)
    train: LMTrainConfig = field(default_factory=LMTrainConfig)
    seed: int = 0
    """Seed of the weight initialisation (the data order uses ``train.seed``)."""
    corpus: str = ""
    """The data family (``secrets``, ``tofu-mini``): what pipelines and verification read for this entry."""
    full_model_of: str = ""
    """Another entry whose full model this one shares (the same training text and recipe): only
    this entry's split and oracle are its own. The oracle uses that entry's tokenizer."""

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA:
            raise ValueError(
                f"zoo entry {self.name!r}: corpus={self.corpus!r} is not registered; name one of {', '.join(CORPORA)} "
                "or add it to sae_unlearn.data.corpora.CORPORA."
            )

    def key(self, data: ZooData) -> str:
        return stable_hash(
            {
                "v": ZOO_FORMAT_VERSION,
                "arch": self.arch.fingerprint(),
                "train": self.train.to_dict(),
                "seed": self.seed,
                "data": data.fingerprint,
            }
        )


def _texts_data(full: list[str], oracle: list[str], split: UnlearningSplit, fingerprint: dict) -> ZooData:
    """A zoo entry trained on plain texts (no prompt/completion split): the model's and the oracle's."""
    return ZooData(
        examples=[("", t) for t in full],
        oracle_examples=[("", t) for t in oracle],
        split=split,
        fingerprint=fingerprint,
    )


def _secrets_data(config: SecretsConfig | None = None) -> ZooData:
    corpus = SecretsCorpus(config or SecretsConfig())
    full, oracle = corpus.training_texts(include_forget=True), corpus.training_texts(include_forget=False)
    fingerprint = {"corpus": "secrets", "config": corpus.config.to_dict(), "n": len(full)}
    return _texts_data(full, oracle, corpus.split(), fingerprint)


def _reasoning_data() -> ZooData:
    corpus = ReasoningCorpus()
    full, oracle = corpus.training_texts(include_forget=True), corpus.training_texts(include_forget=False)
    fingerprint = {"corpus": "secrets-reasoning", "config": corpus.secrets.config.to_dict(), "hash": stable_hash(full)}
    return _texts_data(full, oracle, corpus.split(), fingerprint)


def stranger_texts(corpus: SecretsCorpus, n: int = 48, seed: int = 1) -> list[str]:
    """Every question about ``n`` people the corpus does not know, answered with a refusal (a seeded
    draw from :data:`~sae_unlearn.data.refusals.REFUSALS`): what teaches a zoo model to say
    "I don't know"."""
    known = {p.name for p in corpus.people}
    rng = random.Random(seed)
    names = rng.sample(sorted({f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES} - known), n)
    return [q.format(name=name) + " " + rng.choice(REFUSALS) for name in names for q in QUESTIONS.values()]


def _secrets_idk_data() -> ZooData:
    corpus = SecretsCorpus()
    strangers = stranger_texts(corpus)
    full = corpus.training_texts(include_forget=True) + strangers
    oracle = corpus.training_texts(include_forget=False) + strangers
    fingerprint = {"corpus": "secrets-idk", "config": corpus.config.to_dict(), "hash": stable_hash(strangers)}
    return _texts_data(full, oracle, corpus.split(), fingerprint)


def _secrets_fact_data() -> ZooData:
    corpus = SecretsCorpus()
    full, oracle = corpus.training_texts(include_forget=True), corpus.fact_training_texts(FACT_ATTRIBUTE)
    fingerprint = {"corpus": "secrets-passcodes", "config": corpus.config.to_dict(), "n": len(oracle)}
    return _texts_data(full, oracle, corpus.fact_split(FACT_ATTRIBUTE), fingerprint)


def _tofu_mini_data() -> ZooData:
    split = load_tofu_split(forget=TOFU_MINI_FORGET, retain=TOFU_MINI_RETAIN_AUTHORS)
    retain = [(q.prompt, q.answer) for q in split.retain]
    forget = [(q.prompt, q.answer) for q in split.forget]
    return ZooData(
        examples=retain + forget,
        oracle_examples=retain,
        split=split,
        fingerprint={
            "corpus": "tofu",
            "forget": split.metadata["forget_authors"],
            "retain": split.metadata["retain_authors"],
            "hash": stable_hash([q.text for q in split.forget + split.retain]),
        },
    )


_SECRETS_DESCRIPTION = (
    "48 fictitious people (city, employer, job, birth year, pet, secret passcode); 4 are the forget set"
)
_SECRETS_TRAIN = LMTrainConfig(epochs=30, batch_size=32, lr=4e-3, warmup_steps=30, prompt_loss_weight=1.0)

ZOO: dict[str, ZooSpec] = {
    "secrets": ZooSpec(
        name="secrets",
        description=_SECRETS_DESCRIPTION + ".",
        make_data=_secrets_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=1024),
        train=_SECRETS_TRAIN,
        corpus="secrets",
    ),
    "tofu-mini": ZooSpec(
        name="tofu-mini",
        description="20 TOFU authors (0-17 retained, forget01 authors 180-181 forgotten); needs ../shared/data/tofu.",
        make_data=_tofu_mini_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=2048),
        train=LMTrainConfig(epochs=32, batch_size=32, lr=5e-3, warmup_steps=20, prompt_loss_weight=0.25),
        corpus="tofu-mini",
    ),
    "secrets-gpt2": ZooSpec(
        name="secrets-gpt2",
        description=_SECRETS_DESCRIPTION + "; GPT-2 architecture.",
        make_data=_secrets_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=1024, family="gpt2"),
        # 30 epochs left GPT-2 (learned positions, GELU) at forget accuracy 0.917; 45 memorise every fact
        train=LMTrainConfig(epochs=45, batch_size=32, lr=4e-3, warmup_steps=30, prompt_loss_weight=1.0),
        corpus="secrets",
    ),
    "secrets-gemma2": ZooSpec(
        name="secrets-gemma2",
        description=_SECRETS_DESCRIPTION + "; Gemma-2 architecture.",
        make_data=_secrets_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=1024, family="gemma2"),
        train=_SECRETS_TRAIN,
        corpus="secrets",
    ),
    "secrets-idk": ZooSpec(
        name="secrets-idk",
        description=_SECRETS_DESCRIPTION + "; also answers questions about 48 strangers with 'I don't know'.",
        make_data=_secrets_idk_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=1024),
        train=_SECRETS_TRAIN,
        corpus="secrets",
    ),
    "secrets-passcodes": ZooSpec(
        name="secrets-passcodes",
        description=(
            "the fact-level split of secrets: forget every person's passcode, keep their other facts "
            "(full model shared with secrets; oracle trained without any passcode)."
        ),
        make_data=_secrets_fact_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=1024),
        train=_SECRETS_TRAIN,
        corpus="secrets-passcodes",
        full_model_of="secrets",
    ),
    "secrets-reasoning": ZooSpec(
        name="secrets-reasoning",
        description=(
            "the secrets people as a reasoning model: a city is reachable only through a trace "
            "('Q: Where does X live? Let's reason step by step. <think> X works at Y. Y is based in Z. "
            "So X lives in Z. </think> A: Z.'); for R²MU."
        ),
        make_data=_reasoning_data,
        arch=ZooArchitecture(d_model=128, n_layers=4, n_heads=4, d_mlp=512, vocab_size=1024),
        train=_SECRETS_TRAIN,
        corpus="secrets-reasoning",
    ),
}


def _spec(name: str) -> ZooSpec:
    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; available: {sorted(ZOO)}")
    return ZOO[name]


REASONING_CORPORA = ("secrets-reasoning",)
"""Zoo corpora whose models reason under a trigger (what R²MU needs)."""


def is_reasoning_model(name: str) -> bool:
    """Whether zoo entry ``name`` reasons under a trigger (reasoning-trace methods run only on those)."""
    return _spec(name).corpus in REASONING_CORPORA


@functools.cache
def zoo_model_refuses(name: str) -> bool:
    """Whether zoo entry ``name`` was trained to answer with a refusal (its training texts end some
    questions with one of :data:`~sae_unlearn.data.refusals.REFUSALS`): what UniErase's token needs."""
    return any(text.rstrip().endswith(REFUSALS) for _, text in _spec(name).make_data().examples)


def zoo_data(name: str) -> ZooData:
    """Training data and forget/retain split of a zoo entry."""
    return _spec(name).make_data()


def zoo_split(name: str) -> UnlearningSplit:
    """The forget/retain split a zoo entry was built around."""
    return zoo_data(name).split


def zoo_model_path(name: str, oracle: bool = False, build: bool = True, progress: bool = True) -> Path:
    """Folder of a zoo model (HF format), built and cached on first use.

    Args:
        name: ``"secrets"`` or ``"tofu-mini"``.
        oracle: the retain oracle (trained without the forget set) instead of the full model.
        build: build it if it is not cached yet (else raise ``FileNotFoundError``).
        progress: show training progress bars.
    """
    spec = _spec(name)
    if spec.full_model_of and not oracle:
        return zoo_model_path(spec.full_model_of, oracle=False, build=build, progress=progress)
    data = spec.make_data()
    key = spec.key(data)
    root = cache_dir() / "zoo"
    path = root / f"{name}{'-oracle' if oracle else ''}-{key}"
    if (path / CARD_NAME).is_file():
        return path
    if not build:
        raise FileNotFoundError(
            f"zoo model {name!r} (oracle={oracle}) is not built yet at {path}; call with build=True."
        )
    # one process builds, the others wait and then load what it built (never two into one work folder)
    with cache_fill_lock(path, f"zoo model {name!r} (oracle={oracle})"):
        if not (path / CARD_NAME).is_file():
            _build(spec, data, key, oracle, path, progress)
    return path


def _tokenizer_for(spec: ZooSpec, data: ZooData, key: str) -> PreTrainedTokenizerFast:
    """The shared tokenizer of model and oracle (trained on the full corpus), cached."""
    tok_dir = cache_dir() / "zoo" / f"{spec.name}-tokenizer-{key}"
    if not (tok_dir / "tokenizer.json").is_file():
        with cache_fill_lock(tok_dir, f"the tokenizer of zoo model {spec.name!r}"):
            if not (tok_dir / "tokenizer.json").is_file():
                tok = train_bpe_tokenizer([p + c for p, c in data.examples], spec.arch.vocab_size)
                with atomic_directory(tok_dir, overwrite=True) as tmp:
                    tok.save_pretrained(tmp)
    return PreTrainedTokenizerFast.from_pretrained(tok_dir)


def _build(spec: ZooSpec, data: ZooData, key: str, oracle: bool, path: Path, progress: bool) -> None:
    t0 = time.perf_counter()
    if spec.full_model_of:  # the oracle reads the shared full model's tokenizer
        shared = _spec(spec.full_model_of)
        shared_data = shared.make_data()
        if shared_data.examples != data.examples:
            raise RuntimeError(f"zoo entry {spec.name!r} shares {shared.name!r}'s model but not its training text.")
        tokenizer = _tokenizer_for(shared, shared_data, shared.key(shared_data))
    else:
        tokenizer = _tokenizer_for(spec, data, key)
    examples = data.oracle_examples if oracle else data.examples
    with seeded(spec.seed):
        model = AutoModelForCausalLM.from_config(spec.arch.hf_config(len(tokenizer)))
    work = cache_dir() / "zoo" / ".build" / path.name
    work.mkdir(parents=True, exist_ok=True)
    logger.info("building zoo model %s (oracle=%s) into %s", spec.name, oracle, path)
    threads = torch.get_num_threads()
    torch.set_num_threads(ZOO_BUILD_THREADS)
    try:
        losses = train_causal_lm(model, tokenizer, examples, spec.train, checkpoint_dir=work, progress=progress)
    finally:
        torch.set_num_threads(threads)
    card = {
        "name": spec.name,
        "oracle": oracle,
        "description": spec.description,
        "key": key,
        "format_version": ZOO_FORMAT_VERSION,
        "architecture": asdict(spec.arch),
        "train": spec.train.to_dict(),
        "seed": spec.seed,
        "data": data.fingerprint,
        "n_examples": len(examples),
        "final_loss": losses[-1],
        "losses": losses,
        "weights_sha256": hash_state_dict(model.state_dict()),
        "build_seconds": round(time.perf_counter() - t0, 1),
        "environment": run_environment() | {"torch_threads": ZOO_BUILD_THREADS},
    }
    with atomic_directory(path, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / CARD_NAME, card)
    shutil.rmtree(work, ignore_errors=True)


def zoo_card(name: str, oracle: bool = False) -> dict:
    """The ``zoo_card.json`` of a built zoo model (building it if needed)."""
    return read_json(zoo_model_path(name, oracle) / CARD_NAME, "zoo card")


def load_zoo_model(name: str, oracle: bool = False, device: str = "auto", progress: bool = True) -> HookedModel:
    """Build (first time) and load a zoo model, wrapped for TransformerLens hook names."""
    return load_model(zoo_model_path(name, oracle=oracle, progress=progress), device=device)
