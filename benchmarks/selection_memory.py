"""Streaming vs stored layer/latent selection at real model widths: speed and peak memory.

    python benchmarks/selection_memory.py [--shapes gpt2-small gemma-2] [--tokens 20000 200000]
                                          [--layers 2] [--expansion 8] [--batch-size 16]

For each shape a model is built locally from its transformers config with random weights (its
real width, head count, MLP width and vocabulary; ``--layers`` blocks, since only the blocks up
to the deepest SAE run) and saved with the secrets tokenizer; one random JumpReLU SAE (sae-lens,
``--expansion`` x width) sits at every block's ``hook_resid_post``. The text is the secrets
corpus, sentences joined into ~128-token texts, forget people's texts on one side.

Every measurement runs in a fresh child process and reports seconds and peak RSS: the kernel's
peak mark (VmHWM) is reset once the model and SAEs are loaded, so the peak is the path's own (with
the loaded model resident), not loading's:

- ``forward``: the bare model forward pass over the texts (to the logits), batch by batch;
- ``forward to hooks``: the same, stopped after the deepest SAE's hook (what capture runs);
- ``streaming``: :func:`~sae_unlearn.selection.streaming.select_layer_and_latents_streaming`
  (two passes, nothing stored), with and without the reconstruction statistics;
- ``stored``: :func:`~sae_unlearn.capture.capture_activations` in memory, then
  :func:`~sae_unlearn.selection.select_layer_and_latents` (the path used where SAEs are fitted).

sae-lens has no selection path to compare with: its ``ActivationsStore`` is the shuffled
training buffer of its SAE trainer (bounded by ``n_batches_in_buffer``), which
``benchmarks/sae_throughput.py`` already compares with the toolkit's capture.

Printed: a markdown table (pasted into benchmarks/README.md) with tokens/s, time relative to the
bare forward pass, peak RSS, and the peak's growth from the smallest to the largest token count.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    # GPT-2 small (124M): d_model 768, 12 heads, MLP 3072, vocab 50257
    "gpt2-small": {"arch": "gpt2", "d_model": 768, "heads": 12, "mlp": 3072, "vocab": 50257},
    # Gemma-2-2B: d_model 2304, 8 heads (4 kv) of 256, MLP 9216, vocab 256000
    "gemma-2": {
        "arch": "gemma2",
        "d_model": 2304,
        "heads": 8,
        "kv_heads": 4,
        "head_dim": 256,
        "mlp": 9216,
        "vocab": 256000,
    },
}
MODES = ["forward", "forward to hooks", "streaming", "streaming, no SAE stats", "stored"]


def build_model(shape: str, layers: int, folder: Path) -> None:
    """Save a random-weight model of ``shape`` with ``layers`` blocks and the secrets tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma2Config, GPT2Config

    from sae_unlearn.models import zoo_model_path

    s = SHAPES[shape]
    if s["arch"] == "gpt2":
        config = GPT2Config(vocab_size=s["vocab"], n_embd=s["d_model"], n_layer=layers, n_head=s["heads"])
    else:
        config = Gemma2Config(
            vocab_size=s["vocab"],
            hidden_size=s["d_model"],
            intermediate_size=s["mlp"],
            num_hidden_layers=layers,
            num_attention_heads=s["heads"],
            num_key_value_heads=s["kv_heads"],
            head_dim=s["head_dim"],
        )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(zoo_model_path("secrets", progress=False)).save_pretrained(folder)


def make_texts(n_tokens: int, tokenizer) -> tuple[list[str], list[str]]:
    """Forget and retain texts of ~128 tokens from the secrets corpus, ``n_tokens`` in all."""
    import random

    from sae_unlearn.data import SecretsCorpus

    corpus = SecretsCorpus()
    pools = {"forget": corpus.forget_texts(), "retain": corpus.retain_texts()}
    rng = random.Random(0)
    out: dict[str, list[str]] = {"forget": [], "retain": []}
    total, i = 0, 0
    while total < n_tokens:
        side = "forget" if i % 4 == 0 else "retain"  # a quarter of the text is about forget people
        text = f"Note {i}. " + " ".join(rng.choice(pools[side]) for _ in range(10))
        total += len(tokenizer(text).input_ids)
        out[side].append(text)
        i += 1
    return out["forget"], out["retain"]


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux ``clear_refs`` 5); return it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mb("VmRSS")
    except OSError:  # not Linux: fall back to the process's lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    try:
        return _status_mb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from sae_unlearn.capture import capture_activations
    from sae_unlearn.capture.capture import iter_activations
    from sae_unlearn.models import load_model, resid_post
    from sae_unlearn.selection import select_layer_and_latents
    from sae_unlearn.selection.streaming import select_layer_and_latents_streaming

    torch.set_num_threads(args.threads)
    model = load_model(args.model_dir, device="cpu")
    forget, retain = make_texts(args.n_tokens, model.tokenizer)
    hooks = [resid_post(layer) for layer in range(model.n_layers)]
    saes = {}
    for i, h in enumerate(hooks):
        torch.manual_seed(i)
        cfg = JumpReLUSAEConfig(
            d_in=model.d_model, d_sae=args.expansion * model.d_model, metadata=SAEMetadata(hook_name=h)
        )
        sae = JumpReLUSAE(cfg)
        with torch.no_grad():
            sae.W_enc.normal_(0, model.d_model**-0.5)
            sae.W_dec.copy_(sae.W_enc.T / sae.W_enc.T.norm(dim=1, keepdim=True))
            sae.threshold.fill_(0.5)
        saes[h] = sae
    texts = forget + retain
    gc.collect()
    base_rss = _reset_peak_rss()  # the peak below is this path's own, not loading's
    t0 = time.perf_counter()
    n_tok = 0
    if args.mode == "forward":
        with torch.no_grad():
            for b in range(0, len(texts), args.batch_size):
                batch = model.tokenize(texts[b : b + args.batch_size])
                model.hf_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
                n_tok += int(batch.attention_mask.sum())
    elif args.mode == "forward to hooks":
        for batch in iter_activations(model, texts, hooks, args.batch_size, progress=False):
            n_tok += batch.n_tokens
    elif args.mode.startswith("streaming"):
        res = select_layer_and_latents_streaming(
            model,
            saes,
            forget,
            retain,
            n_latents=32,
            batch_size=args.batch_size,
            progress=False,
            reconstruction=args.mode == "streaming",
        )
        n_tok = sum(s.n_forget + s.n_retain for s in [res.latents.stats])
    else:
        store = capture_activations(model, texts, hooks, batch_size=args.batch_size, progress=False)
        forget_mask = store.seq_index < len(forget)
        res = select_layer_and_latents(saes, store, forget_mask, n_latents=32)
        n_tok = store.n_tokens
    seconds = time.perf_counter() - t0
    peak = _peak_rss_mb()
    print(json.dumps({"seconds": seconds, "tokens": n_tok, "peak_rss_mb": peak, "rss_after_load_mb": base_rss}))


def run_child(model_dir: Path, mode: str, n_tokens: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model-dir", str(model_dir), "--mode", mode]
    cmd += ["--n-tokens", str(n_tokens), "--expansion", str(args.expansion), "--batch-size", str(args.batch_size)]
    cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if out.returncode == -9:  # SIGKILL: the kernel's out-of-memory killer (the path did not fit)
        return {"failed": "killed (SIGKILL: out of memory)"}
    if out.returncode != 0:
        raise RuntimeError(f"{mode} at {n_tokens} tokens failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--tokens", nargs="+", type=int, default=[20_000, 200_000])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--expansion", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--n-tokens", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"settings: layers={args.layers} expansion={args.expansion} batch_size={args.batch_size} threads={args.threads}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            folder = Path(tmp) / shape
            build_model(shape, args.layers, folder)
            results = {}
            for n in args.tokens:
                for mode in args.modes:
                    r = run_child(folder, mode, n, args)
                    results[mode, n] = r
                    print(f"{shape} {mode} {n}: {r}", flush=True)
            for mode in args.modes:
                for n in args.tokens:
                    r = results[mode, n]
                    if "failed" in r:
                        rows.append(f"| {shape} | {mode} | {n} | {r['failed']} | | | | |")
                        continue
                    fwd = results.get(("forward", n))
                    growth = r["peak_rss_mb"] / results[mode, args.tokens[0]].get("peak_rss_mb", float("nan")) - 1
                    rows.append(
                        f"| {shape} | {mode} | {r['tokens']} | {r['tokens'] / r['seconds']:.0f} | "
                        f"{r['seconds'] / fwd['seconds'] if fwd else float('nan'):.2f} | {r['peak_rss_mb']:.0f} | "
                        f"{r['peak_rss_mb'] - r['rss_after_load_mb']:.0f} | {100 * growth:+.0f}% |"
                    )
    print()
    print(
        "| shape | path | tokens | tokens/s | time vs forward | peak RSS MB | peak above the loaded model MB | "
        f"peak vs {args.tokens[0]} tokens |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
