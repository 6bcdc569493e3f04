#!/usr/bin/env bash
# The GPU check: one script for a CUDA machine, at most ~8 minutes, one table at the end.
#
#   bash benchmarks/gpu_check.sh                 # on a CUDA machine, from the repository root
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_SMALL=1 bash benchmarks/gpu_check.sh   # smoke test of the script on a CPU
#
# It runs, each under its own time limit, in bfloat16:
#   1. the gpt2-small recipe rehearsed at full depth (12 blocks, 6 res-jb SAEs of 24576 latents);
#   2. the gemma-2-2b recipe rehearsed at full depth (26 blocks, 5 Gemma Scope 16k SAEs), shortened
#      in steps and texts (the shape, memory and per-step time are the real ones);
#   3. streaming selection vs the arithmetic floor (forward to the deepest hook + one encode per SAE)
#      at full depth, gpt2-small and gemma-2 shapes (benchmarks/selection_memory.py);
#   4. capture + SAE training, all layers vs one layer (benchmarks/sae_throughput.py).
# and prints one markdown table of seconds and peak memory per stage (host RSS and GPU) to paste into
# benchmarks/real_size.md. The zoo model that step 4 needs is built on first use; carry a
# warm cache (SAE_UNLEARN_CACHE) to skip that.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT=${GPU_CHECK_OUT:-gpu_check_out}
SMALL=${GPU_CHECK_SMALL:-0}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# The benchmark scripts' results files go beside the logs, not over the committed CPU ones.
export BENCHMARK_RESULTS="$OUT/results"

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to torch; run it on a GPU machine (or GPU_CHECK_DEVICE=cpu GPU_CHECK_SMALL=1 to smoke-test)." >&2
  exit 2
fi
if [ -e "$OUT" ]; then
  echo "gpu_check: $OUT exists; remove it or set GPU_CHECK_OUT" >&2
  exit 2
fi
mkdir -p "$OUT"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

if [ "$SMALL" = 1 ]; then   # the smoke test: the same commands, cut to seconds
  GPT2_CUTS="--layers 4 --steps 1 --texts 2"; GEMMA_CUTS="--layers 4 --steps 1 --texts 2"
  SEL_ARGS="--shapes gpt2-small --layers 2 --tokens 500 1000 --d-sae 2048"; THR_ARGS="--tokens 2000 --repeats 1"
else
  GPT2_CUTS="--steps 50 --texts 64"; GEMMA_CUTS="--steps 20 --texts 32"
  SEL_ARGS="--tokens 20000 200000"; THR_ARGS="--tokens 200000 --repeats 1"
fi

run() {  # run NAME SECONDS COMMAND...: time-limited, output kept in $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc in $(( $(date +%s) - t0 ))s (log $OUT/$name.log)"
}

run gpt2_rehearsal 150 "$PY" -m sae_unlearn recipe recipes/gpt2-small_res-jb_secrets.toml --rehearse \
  $GPT2_CUTS --dtype bfloat16 --device "$DEVICE" --out "$OUT/gpt2" --no-progress
run gemma_rehearsal 210 "$PY" -m sae_unlearn recipe recipes/gemma-2-2b-it_gemma-scope_wmdp-cyber.toml --rehearse \
  $GEMMA_CUTS --dtype bfloat16 --device "$DEVICE" --out "$OUT/gemma" --no-progress
run selection 90 "$PY" benchmarks/selection_memory.py $SEL_ARGS --device "$DEVICE"
run sae_throughput 60 "$PY" benchmarks/sae_throughput.py $THR_ARGS --device "$DEVICE"

"$PY" - "$OUT" <<'EOF'
"""One table: each rehearsal's stages (seconds, peak host RSS, peak GPU memory), then the two benchmarks' tables."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print("\n| run | stage | seconds | peak RSS (MB) | peak GPU (MB) | tokens/s |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for name in ("gpt2", "gemma"):
    path = out / name / "report.json"
    if not path.is_file():
        print(f"| {name} | (no report: see {name}_rehearsal.log) | | | | |")
        continue
    report = json.loads(path.read_text())
    for stage, cost in report["stages"].items():
        gpu = cost.get("peak_gpu_mb")
        tps = cost.get("tokens_per_second")
        print(
            f"| {name} ({report['model']['dtype']}, {report['model']['n_layers']} blocks) | {stage} | "
            f"{cost['seconds']:.1f} | {cost['peak_rss_mb']:.0f} | {'' if gpu is None else f'{gpu:.0f}'} | "
            f"{'' if tps is None else f'{tps:.0f}'} |"
        )
for name in ("selection", "sae_throughput"):
    log = (out / f"{name}.log").read_text() if (out / f"{name}.log").is_file() else ""
    rows = [line for line in log.splitlines() if line.startswith("|")]
    print(f"\n{name}:\n" + ("\n".join(rows) if rows else f"(no table: see {name}.log)"))
EOF
