#!/usr/bin/env bash
# SFA on the lm-domains sequence (Math -> Law -> Code) at a scale worth a GPU: the gpu-small preset
# (~26M-parameter Llama-style byte LM, bf16 autocast), pretrained here on machine text, then 5 methods x 1 seed.
# About 6 minutes on one H100; writes everything to OUT (default runs/gpu_sfa_lm):
#   throughput.txt (SFA vs plain tokens/s), table/lm_table.md|csv, table/lm_acc.png, table/points/*.json, env.txt
#
#   bash benchmarks/gpu_sfa_lm.sh [OUT]
#   TINY=1 bash benchmarks/gpu_sfa_lm.sh /tmp/out    # the same script on CPU with a tiny setting (CI check)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_sfa_lm}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 LAB_RUNS="$OUT/runs" LAB_CACHE="${LAB_CACHE:-$OUT/cache}"

if [ "${TINY:-0}" = "1" ]; then
  PRESET=tiny; STEPS=4; BATCH=4; NTEST=4; THREADS=1; DEVICE=cpu; TP_STEPS=6; TP_REPEATS=1
  METHODS="seq,sfa b=0.5 p=0.25"
else
  PRESET=gpu-small; STEPS=200; BATCH=32; NTEST=64; THREADS=0; DEVICE=auto; TP_STEPS=100; TP_REPEATS=3
  METHODS="seq,multitask,replay 5%,sfa b=0.5 p=0.25,ties"
fi

"$PY" - <<'PYEOF' > "$OUT/env.txt" 2>&1 || true
import torch, transformers, platform
print("torch", torch.__version__, "transformers", transformers.__version__, "python", platform.python_version())
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
PYEOF
cat "$OUT/env.txt"

start=$(date +%s)
"$PY" benchmarks/sfa_lm_throughput.py --preset "$PRESET" --steps "$TP_STEPS" --batch "$BATCH" \
  --repeats "$TP_REPEATS" --threads "$THREADS" --no-hf 2>&1 | tee "$OUT/throughput.txt"
"$PY" benchmarks/sfa_lm_table.py --preset "$PRESET" --steps "$STEPS" --batch "$BATCH" --lr 1e-3 \
  --n-test "$NTEST" --seeds 0 --methods "$METHODS" --threads "$THREADS" --device "$DEVICE" \
  --out "$OUT/table" 2>&1 | tee "$OUT/table.txt"
echo "gpu_sfa_lm: done in $(( $(date +%s) - start ))s; results in $OUT" | tee -a "$OUT/env.txt"
