"""Streaming vs stored layer/latent selection at real model widths and depths: speed and peak memory.

    python benchmarks/selection_memory.py [--shapes gpt2-small gemma-2] [--tokens 20000 200000]
                                          [--layers N] [--d-sae N] [--l0 64] [--batch-size 16]
                                          [--device cpu]

For each shape a model is built locally from its transformers config with random weights (its
real width, head count, MLP width and vocabulary, and by default its full depth: 12 blocks for
gpt2-small, 26 for gemma-2; ``--layers`` fewer, for a quick check) and saved with the secrets
tokenizer. The SAEs sit at the hooks of the shape's recipe in ``recipes/`` (gpt2-small:
``blocks.3-8.hook_resid_pre``, the gpt2-small-res-jb set, 24576 latents; gemma-2:
``blocks.{3,5,7,9,11}.hook_resid_post``, Gemma Scope's 16k), as random JumpReLU SAEs (sae-lens)
whose threshold is set on the first batch so that about ``--l0`` latents fire per token, as the
pretrained ones do; with ``--layers`` too few for a recipe hook, that hook is dropped (and with
none left, one SAE at the last block's site). The text is the secrets corpus, sentences joined
into ~128-token texts, forget people's texts on one side.

Every measurement runs in a fresh child process and reports seconds and peak RSS: the kernel's
peak mark (VmHWM) is reset once the model and SAEs are loaded, so the peak is the path's own (with
the loaded model resident), not loading's:

- ``forward``: the bare model forward pass over the texts (to the logits), batch by batch;
- ``forward to hooks``: the same, stopped after the deepest SAE's hook (what capture runs);
- ``encode``: only the SAEs' encodings of every token's activations (the forward pass to the
  hooks runs to make them, untimed);
- ``streaming``: :func:`~sae_unlearn.selection.streaming.select_layer_and_latents_streaming`
  (one pass, sparse codes spilled to a temporary file), with and without the reconstruction
  statistics;
- ``stored``: :func:`~sae_unlearn.capture.capture_activations` in memory, then
  :func:`~sae_unlearn.selection.select_layer_and_latents` (the path used where SAEs are fitted).

The floor of any selection from text is one forward pass to the deepest hook plus one encoding of
every token by every SAE: ``forward to hooks`` + ``encode`` of the same run and token count. Each
path's time is given against it, and against the bare forward pass.

sae-lens has no selection path to compare with: its ``ActivationsStore`` is the shuffled
training buffer of its SAE trainer (bounded by ``n_batches_in_buffer``), which
``benchmarks/sae_throughput.py`` already compares with the toolkit's capture.

Printed: a markdown table with tokens/s, time relative to the floor and to the bare forward pass,
peak RSS, and the peak's growth from the smallest to the largest token count; the same table is
written to ``benchmarks/results/selection_memory.json`` (``--results NAME`` for another name;
``make tables`` puts it into benchmarks/saes.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from tables import record, table  # benchmarks/tables.py: this script's folder is on sys.path

from sae_unlearn.recipes.measure import peak_rss_mb, reset_peak_rss, status_mb

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

SHAPES: dict[str, dict[str, Any]] = {
    # GPT-2 small (124M): d_model 768, 12 heads, MLP 3072, vocab 50257
    "gpt2-small": {
        "arch": "gpt2",
        "d_model": 768,
        "heads": 12,
        "mlp": 3072,
        "vocab": 50257,
        "layers": 12,
        "d_sae": 24576,
        "recipe": "gpt2-small_res-jb_secrets.toml",
    },
    # Gemma-2-2B: d_model 2304, 8 heads (4 kv) of 256, MLP 9216, vocab 256000
    "gemma-2": {
        "arch": "gemma2",
        "d_model": 2304,
        "heads": 8,
        "kv_heads": 4,
        "head_dim": 256,
        "mlp": 9216,
        "vocab": 256000,
        "layers": 26,
        "d_sae": 16384,
        "recipe": "gemma-2-2b-it_gemma-scope_wmdp-cyber.toml",
    },
}
MODES = ["forward", "forward to hooks", "encode", "streaming", "streaming, no SAE stats", "stored"]


def recipe_hooks(shape: str, layers: int) -> list[str]:
    """The SAE hooks of the shape's recipe that a ``layers``-block model has (see the docstring)."""
    from sae_unlearn.models.hooks import hook_layer

    with open(RECIPES / SHAPES[shape]["recipe"], "rb") as f:
        hooks = list(tomllib.load(f)["saes"]["ids"])
    kept = [h for h in hooks if (hook_layer(h) or 0) < layers]
    if not kept:
        site = hooks[-1].split(".", 2)[2]
        kept = [f"blocks.{layers - 1}.{site}"]
        print(f"{shape}: no recipe hook in {layers} blocks; one SAE at {kept[0]}", flush=True)
    return kept


def build_model(shape: str, layers: int, folder: Path) -> None:
    """Save a random-weight model of ``shape`` with ``layers`` blocks and the secrets tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma2Config, GPT2Config, PretrainedConfig

    from sae_unlearn.models import zoo_model_path

    s = SHAPES[shape]
    config: PretrainedConfig
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


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import torch
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from sae_unlearn.capture import capture_activations
    from sae_unlearn.capture.capture import iter_activations
    from sae_unlearn.models import load_model
    from sae_unlearn.selection import select_layer_and_latents
    from sae_unlearn.selection.streaming import select_layer_and_latents_streaming

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_model(args.model_dir, device=device)
    forget, retain = make_texts(args.n_tokens, model.tokenizer)
    hooks = args.hooks
    texts = forget + retain
    first = next(iter_activations(model, texts, hooks, args.batch_size, progress=False))  # to set thresholds
    saes = {}
    for i, h in enumerate(hooks):
        torch.manual_seed(i)
        cfg = JumpReLUSAEConfig(d_in=model.d_model, d_sae=args.d_sae, metadata=SAEMetadata(hook_name=h))
        sae = JumpReLUSAE(cfg)
        with torch.no_grad():
            sae.W_enc.normal_(0, model.d_model**-0.5)
            sae.W_dec.copy_(sae.W_enc.T / sae.W_enc.T.norm(dim=1, keepdim=True))
            pre = (first.activations[h][:256].float() @ sae.W_enc + sae.b_enc).flatten()
            sae.threshold.fill_(float(pre.kthvalue(pre.numel() - args.l0 * pre.numel() // args.d_sae).values))
        saes[h] = sae.to(device)
    del first, pre

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    gc.collect()
    scoped = reset_peak_rss()
    base_rss = status_mb("VmRSS") if scoped else peak_rss_mb(False)
    encoding = 0.0
    extra: dict[str, Any] = {}  # the peak below is this path's own, not loading's
    t0 = time.perf_counter()
    n_tok = 0
    if args.mode == "forward":
        with torch.no_grad():
            for b in range(0, len(texts), args.batch_size):
                batch = model.tokenize(texts[b : b + args.batch_size])
                ids, attention = batch.input_ids.to(model.device), batch.attention_mask.to(model.device)
                model.hf_model(input_ids=ids, attention_mask=attention, use_cache=False)
                n_tok += int(batch.attention_mask.sum())
    elif args.mode == "forward to hooks":
        for acts in iter_activations(model, texts, hooks, args.batch_size, progress=False, device=device):
            n_tok += acts.n_tokens
    elif args.mode == "encode":  # time only the encodings; the forward pass that makes the activations is not counted
        encoding = 0.0
        with torch.no_grad():
            for acts in iter_activations(model, texts, hooks, args.batch_size, progress=False, device=device):
                sync()
                t = time.perf_counter()
                for h in hooks:
                    saes[h].encode(acts.activations[h])
                sync()
                encoding += time.perf_counter() - t
                n_tok += acts.n_tokens
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
        n_tok = res.latents.stats.n_forget + res.latents.stats.n_retain
        extra["l0"] = {h: round(st.l0, 1) for h, st in res.sae_stats.items()}  # the SAEs' measured L0
    else:
        store = capture_activations(model, texts, hooks, batch_size=args.batch_size, progress=False)
        forget_mask = store.seq_index < len(forget)
        res = select_layer_and_latents(saes, store, forget_mask, n_latents=32)
        n_tok = store.n_tokens
    sync()
    seconds = encoding if args.mode == "encode" else time.perf_counter() - t0
    peak = peak_rss_mb(scoped)
    print(
        json.dumps({"seconds": seconds, "tokens": n_tok, "peak_rss_mb": peak, "rss_after_load_mb": base_rss, **extra})
    )


def run_child(
    model_dir: Path, mode: str, n_tokens: int, hooks: list[str], d_sae: int, args: argparse.Namespace
) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model-dir", str(model_dir), "--mode", mode]
    cmd += ["--n-tokens", str(n_tokens), "--d-sae", str(d_sae), "--l0", str(args.l0)]
    cmd += ["--batch-size", str(args.batch_size), "--threads", str(args.threads), "--device", args.device]
    cmd += ["--hooks", *hooks]
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
    p.add_argument("--layers", type=int, default=None, help="blocks (default: the shape's full depth)")
    p.add_argument("--d-sae", type=int, default=None, help="SAE width (default: the recipe SAEs')")
    p.add_argument("--l0", type=int, default=64, help="latents firing per token (the thresholds are set to it)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    p.add_argument("--results", default="selection_memory", help="writes benchmarks/results/RESULTS.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--n-tokens", type=int, help=argparse.SUPPRESS)
    p.add_argument("--hooks", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(f"settings: l0={args.l0} batch_size={args.batch_size} threads={args.threads} device={args.device}")
    rows = []
    cells: list[list] = []  # the same rows, for the results file
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            layers = args.layers or SHAPES[shape]["layers"]
            d_sae = args.d_sae or SHAPES[shape]["d_sae"]
            hooks = recipe_hooks(shape, layers)
            print(f"{shape}: {layers} blocks, SAEs of {d_sae} latents at {hooks}", flush=True)
            folder = Path(tmp) / shape
            build_model(shape, layers, folder)
            results = {}
            for n in args.tokens:
                for mode in args.modes:
                    r = run_child(folder, mode, n, hooks, d_sae, args)
                    results[mode, n] = r
                    print(f"{shape} {mode} {n}: {r}", flush=True)
            for mode in args.modes:
                for n in args.tokens:
                    rows.append(_row(shape, mode, n, results, args.tokens[0]))
                    cells.append(_cells(shape, mode, n, results, args.tokens[0]))
    print()
    print(
        "| shape | path | tokens | tokens/s | time vs floor | time vs forward | peak RSS MB | "
        f"peak above the loaded model MB | peak vs {args.tokens[0]} tokens |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    columns = ["shape", "path", "tokens", "tokens/s", "time vs floor", "time vs forward", "peak RSS MB"]
    columns += ["peak above the loaded model MB", f"peak vs {args.tokens[0]} tokens"]
    formats = [None, None, None, ".0f", ".2f", ".2f", ".0f", ".0f", None]
    notes = f"l0={args.l0} batch_size={args.batch_size} threads={args.threads} device={args.device}"
    notes += f"; blocks: {args.layers or 'full depth'}"
    record(args.results, {"paths": table(columns, formats, cells)}, notes=notes)


def _row(shape: str, mode: str, n: int, results: dict, smallest: int) -> str:
    """One table row; the floor is ``forward to hooks`` + ``encode`` at the same token count."""
    r = results[mode, n]
    if "failed" in r:
        return f"| {shape} | {mode} | {n} | {r['failed']} | | | | | |"

    def seconds(m: str) -> float:
        got = results.get((m, n), {})
        return got.get("seconds", float("nan"))

    floor = seconds("forward to hooks") + seconds("encode")
    growth = r["peak_rss_mb"] / results[mode, smallest].get("peak_rss_mb", float("nan")) - 1
    return (
        f"| {shape} | {mode} | {r['tokens']} | {r['tokens'] / r['seconds']:.0f} | {r['seconds'] / floor:.2f} | "
        f"{r['seconds'] / seconds('forward'):.2f} | {r['peak_rss_mb']:.0f} | "
        f"{r['peak_rss_mb'] - r['rss_after_load_mb']:.0f} | {100 * growth:+.0f}% |"
    )


def _cells(shape: str, mode: str, n: int, results: dict, smallest: int) -> list:
    """:func:`_row`'s cells, for the results file (numbers as numbers)."""
    r = results[mode, n]
    if "failed" in r:
        return [shape, mode, n, r["failed"], "", "", "", "", ""]

    def seconds(m: str) -> float:
        return results.get((m, n), {}).get("seconds", float("nan"))

    floor = seconds("forward to hooks") + seconds("encode")
    growth = r["peak_rss_mb"] / results[mode, smallest].get("peak_rss_mb", float("nan")) - 1
    return [
        shape,
        mode,
        r["tokens"],
        r["tokens"] / r["seconds"],
        r["seconds"] / floor,
        r["seconds"] / seconds("forward"),
        r["peak_rss_mb"],
        r["peak_rss_mb"] - r["rss_after_load_mb"],
        f"{100 * growth:+.0f}%",
    ]


if __name__ == "__main__":
    main()
