#!/usr/bin/env bash
# SFA on a Hugging Face causal LM at a scale worth a GPU: Math -> Law -> Code with the `embedded-gpu` preset
# (Llama-style, d=512, 8 layers, ~30M parameters, 8k BPE vocabulary, 512-token blocks, bf16 autocast),
# pretrained here on the Math + Law + Code + docs mixture (3000 steps x 32 blocks), then every method x 2 seeds
# with T = 200 steps a task, plus the transfer check (pretrained vs from scratch per task).
# Sized from estimates for about 20-30 minutes on one H100/H200; NOT run yet (no GPU was available).
# Writes to OUT (default runs/gpu_sfa_lm): throughput.txt, table/{results.json,table.md,config.json,
# provenance.json,points/}, env.txt.
#
#   bash benchmarks/gpu_sfa_lm.sh [OUT]
#   MODEL=/path/to/hf-model LORA=16 bash benchmarks/gpu_sfa_lm.sh OUT   # your own HF causal LM (e.g. Pythia), LoRA
#   TINY=1 bash benchmarks/gpu_sfa_lm.sh /tmp/out    # the same script on CPU with the tiny preset (a check)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_sfa_lm}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
mkdir -p "$OUT"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" LAB_RUNS="$OUT/runs" LAB_CACHE="${LAB_CACHE:-$OUT/cache}"

if [ "${TINY:-0}" = "1" ]; then
  MODEL="${MODEL:-embedded-tiny}"; STEPS=4; BATCH=4; NTEST=4; THREADS=1; DEVICE=cpu; SEEDS=0
  METHODS="seq,sfa b=0.5 p=0.25"; TP="--preset tiny --steps 6 --batch 4 --repeats 1 --threads 1"
else
  MODEL="${MODEL:-embedded-gpu}"; STEPS=200; BATCH=32; NTEST=64; THREADS=0; DEVICE=auto; SEEDS=0,1
  METHODS=""; TP="--preset gpu-small --steps 100 --batch 32 --repeats 3 --threads 0"
fi

"$PY" - <<'PYEOF' > "$OUT/env.txt" 2>&1 || true
import torch, transformers, platform
print("torch", torch.__version__, "transformers", transformers.__version__, "python", platform.python_version())
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
PYEOF
cat "$OUT/env.txt"

start=$(date +%s)
# SFA vs plain fine-tuning tokens/s (the byte-LM preset; the averaging cost does not depend on the tokenizer)
"$PY" benchmarks/sfa_lm_throughput.py $TP --no-hf 2>&1 | tee "$OUT/throughput.txt"
"$PY" benchmarks/sfa_lm_hf_table.py --model "$MODEL" --lora "${LORA:-0}" --steps "$STEPS" --batch "$BATCH" \
  --lr 5e-4 --n-test "$NTEST" --seeds "$SEEDS" --methods "$METHODS" --threads "$THREADS" --device "$DEVICE" \
  --out "$OUT/table" 2>&1 | tee "$OUT/table.txt"
echo "gpu_sfa_lm: done in $(( $(date +%s) - start ))s; results in $OUT" | tee -a "$OUT/env.txt"
