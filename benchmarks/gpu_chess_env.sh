# Sourced by benchmarks/gpu_chess*.sh: the Python and `lab chess` to use, here or on the GPU machine.
#
# Here: .venv/bin/python and .venv/bin/lab. On the device machine (no .venv, no network, lab not installed):
# its python3 with the tree's packages and data/gpu-corpus/site (pure-Python packages its image lacks:
# python-chess) on PYTHONPATH, and `lab chess` run straight from lab_transcendence.cli.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPU_CORPUS="${GPU_CORPUS:-$ROOT/data/gpu-corpus}"
if [ -z "${GPU_CHESS_PY:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then
  PY="$ROOT/.venv/bin/python"
else  # GPU_CHESS_PY=python3: the device machine's way, also to check it here
  PY="${GPU_CHESS_PY:-$(command -v python3 || command -v python)}"
  export PYTHONPATH="$ROOT/shared/src:$ROOT/packages/transcendence/src:$GPU_CORPUS/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PY
# `lab chess ARGS...` without an installed `lab` (errors: one line, exit 2, as lab does); also for torchrun:
# torchrun --no-python ... "$PY" -c "$LABCHESS_CODE" train ...
LABCHESS_CODE='import sys
from lab_shared.cli import run_cli
from lab_transcendence.cli import app
run_cli(lambda: app(args=sys.argv[1:], prog_name="lab chess", standalone_mode=False))'
labchess() { "$PY" -c "$LABCHESS_CODE" "$@"; }
