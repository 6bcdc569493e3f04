"""Capture + SAE training throughput: sae-unlearn vs sae-lens's own runners, side by side.

    python benchmarks/sae_throughput.py [--tokens 100000] [--repeats 2] [--device auto]

On the same model (the ``secrets`` zoo model, wrapped by TransformerLens's TransformerBridge),
the same corpus tokens, the same TopK SAE config and the same number of training tokens per SAE,
it times, in one run and in alternating order:

- ``sae-unlearn, 1 layer``: capture the corpus once at one hook, fit one SAE (``fit_saes``);
- ``sae-unlearn, all layers``: capture all 4 hooks in one pass, fit 4 SAEs (``MultiSAETrainer``);
- ``sae-lens LanguageModelSAETrainingRunner, 1 layer`` and
  ``sae-lens MultiSAETrainingRunner, all layers``, given the in-memory model and a pre-tokenised
  in-memory dataset of the same corpus.

Throughput is SAE training tokens per second per SAE (wall time includes capture / the LLM
forward passes); the ratios are all-layers vs one-layer time and sae-unlearn vs sae-lens.
Prints a markdown table (also written to benchmarks/results/sae_throughput.json, which
`make tables` puts into benchmarks/saes.md), the capture/training breakdown, and
an arithmetic lower bound on the all-layers / one-layer ratio: the device's measured fp32 matmul
rate at the SAE's shapes gives the least time any trainer could spend on one SAE (only the
encoder's forward matmul and its weight gradient, which TopK cannot make sparse; the k-sparse
decoder counted as free), and with the measured capture times,
``bound = (capture_all + n_layers * sae_min) / (capture_one + sae_min)``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from datasets import Dataset
from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, TopKTrainingSAEConfig
from sae_lens.config import LoggingConfig
from sae_lens.multi_sae_training_runner import MultiSAETrainingRunner, MultiSAETrainingRunnerConfig
from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.capture import capture_activations
from sae_unlearn.data import SecretsCorpus
from sae_unlearn.models import load_zoo_model, resid_post
from sae_unlearn.saes import SAEFitConfig, fit_saes
from sae_unlearn.utils import resolve_device

CONTEXT = 64


def token_dataset(model, texts: list[str]) -> Dataset:
    """The corpus tokenised (BOS per text), concatenated and cut into CONTEXT-token rows."""
    ids = [t for text in texts for t in model.tokenizer(text)["input_ids"]]
    rows = [ids[i : i + CONTEXT] for i in range(0, len(ids) - CONTEXT + 1, CONTEXT)]
    return Dataset.from_dict({"input_ids": rows})


def ours(model, texts, hooks, cfg: SAEFitConfig) -> dict[str, float]:
    t0 = time.perf_counter()
    store = capture_activations(model, texts, hooks, progress=False)
    t1 = time.perf_counter()
    fit_saes(store, hooks, cfg, progress=False)
    t2 = time.perf_counter()
    return {"total": t2 - t0, "capture": t1 - t0, "train": t2 - t1}


def sae_cfg(d_in: int, fit: SAEFitConfig, device: str) -> TopKTrainingSAEConfig:
    return TopKTrainingSAEConfig(
        d_in=d_in, d_sae=fit.expansion_factor * d_in, k=fit.k, device=device, normalize_activations="none"
    )


def common(fit: SAEFitConfig, device: str, tokens: int) -> dict:
    return {
        "model_name": "secrets",
        "dataset_path": "in-memory",
        "is_dataset_tokenized": True,
        "streaming": False,
        "context_size": CONTEXT,
        "training_tokens": tokens,
        "train_batch_size_tokens": fit.batch_size,
        "store_batch_size_prompts": 32,
        "n_batches_in_buffer": 8,
        "lr": fit.lr,
        "lr_warm_up_steps": fit.lr_warm_up_steps,
        "dead_feature_window": fit.dead_feature_window,
        "device": device,
        "logger": LoggingConfig(log_to_wandb=False),
        "checkpoint_path": None,
        "output_path": None,
        "seed": fit.seed,
    }


def sae_lens_one(model, dataset, hook, fit, device, tokens) -> dict[str, float]:
    cfg = LanguageModelSAERunnerConfig(
        sae=sae_cfg(model.d_model, fit, device), hook_name=hook, **common(fit, device, tokens)
    )
    t0 = time.perf_counter()
    LanguageModelSAETrainingRunner(cfg, override_dataset=dataset, override_model=model.bridge).run()
    return {"total": time.perf_counter() - t0}


def sae_lens_all(model, dataset, hooks, fit, device, tokens) -> dict[str, float]:
    cfg = MultiSAETrainingRunnerConfig(
        saes={h: sae_cfg(model.d_model, fit, device) for h in hooks},
        hook_names={h: h for h in hooks},
        **{k: v for k, v in common(fit, device, tokens).items() if k != "is_dataset_tokenized"},
    )
    t0 = time.perf_counter()
    MultiSAETrainingRunner(cfg, override_dataset=dataset, override_model=model.bridge).run()
    return {"total": time.perf_counter() - t0}


def matmul_rate(d_in: int, d_sae: int, batch: int, device: str) -> float:
    """Measured fp32 FLOP/s of ``(batch, d_in) @ (d_in, d_sae)`` on ``device`` (median of 5 x 50)."""
    a = torch.randn(batch, d_in, device=device)
    b = torch.randn(d_in, d_sae, device=device)
    for _ in range(10):
        a @ b
    times = []
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / 50)
    return 2 * batch * d_in * d_sae / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=100_000, help="training tokens per SAE")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of each variant (median reported)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--results", default="sae_throughput", help="writes benchmarks/results/RESULTS.json")
    args = parser.parse_args()
    logging.getLogger("sae_lens").setLevel(logging.ERROR)
    device = str(resolve_device(args.device))
    model = load_zoo_model("secrets", device=device, progress=False)
    corpus = SecretsCorpus()
    texts = corpus.training_texts()
    hooks = [resid_post(l) for l in range(model.n_layers)]
    one = [resid_post(2)]
    fit = SAEFitConfig(training_samples=args.tokens, device=device, n_checkpoints=0)
    dataset = token_dataset(model, texts)
    variants = {
        "sae-unlearn, 1 layer": lambda: ours(model, texts, one, fit),
        "sae-unlearn, all 4 layers": lambda: ours(model, texts, hooks, fit),
        "sae-lens LanguageModelSAETrainingRunner, 1 layer": lambda: sae_lens_one(
            model, dataset, one[0], fit, device, args.tokens
        ),
        "sae-lens MultiSAETrainingRunner, all 4 layers": lambda: sae_lens_all(
            model, dataset, hooks, fit, device, args.tokens
        ),
    }
    results: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    variants["sae-unlearn, 1 layer"]()  # warm-up (imports, allocator)
    for r in range(args.repeats):
        for name in variants if r % 2 == 0 else reversed(list(variants)):
            results[name].append(variants[name]())
    med = {k: statistics.median(x["total"] for x in v) for k, v in results.items()}
    print(
        f"\ndevice: {device}; torch threads: {torch.get_num_threads()}; {args.tokens} training tokens per SAE; "
        f"median of {args.repeats}"
    )
    print("| variant | wall s | SAE training tokens/s per SAE |")
    print("| --- | --- | --- |")
    for name, t in med.items():
        n_saes = 4 if "all" in name else 1
        print(f"| {name} | {t:.1f} | {n_saes * args.tokens / t / n_saes:,.0f} |")
    o1, o4 = med["sae-unlearn, 1 layer"], med["sae-unlearn, all 4 layers"]
    l1, l4 = (
        med["sae-lens LanguageModelSAETrainingRunner, 1 layer"],
        med["sae-lens MultiSAETrainingRunner, all 4 layers"],
    )
    print(f"\nall layers / one layer: sae-unlearn {o4 / o1:.2f}x, sae-lens {l4 / l1:.2f}x")
    print(f"sae-unlearn speed-up over sae-lens: 1 layer {l1 / o1:.2f}x, all layers {l4 / o4:.2f}x")
    caps = {}
    for name in ("sae-unlearn, 1 layer", "sae-unlearn, all 4 layers"):
        caps[name] = statistics.median(x["capture"] for x in results[name])
        tr = statistics.median(x["train"] for x in results[name])
        print(f"{name}: capture {caps[name]:.2f}s, SAE training {tr:.2f}s")
    d_sae = fit.expansion_factor * model.d_model
    rate = matmul_rate(model.d_model, d_sae, fit.batch_size, device)
    sae_min = args.tokens * 2 * (2 * model.d_model * d_sae) / rate  # encoder forward + W_enc gradient
    bound = (caps["sae-unlearn, all 4 layers"] + len(hooks) * sae_min) / (caps["sae-unlearn, 1 layer"] + sae_min)
    print(
        f"matmul rate at the SAE's shapes: {rate / 1e9:.0f} GFLOP/s; least arithmetic per SAE: {sae_min:.2f}s; "
        f"all/one lower bound for any trainer on this device: {bound:.2f}x"
    )
    rows = [[name, t, args.tokens / t] for name, t in med.items()]
    columns = ["variant", "wall s", "SAE training tokens/s per SAE"]
    notes = f"device {device}; torch threads {torch.get_num_threads()}; median of {args.repeats}, alternating order"
    record(args.results, {"throughput": table(columns, [None, ".1f", ",.0f"], rows)}, notes=notes)


if __name__ == "__main__":
    main()
