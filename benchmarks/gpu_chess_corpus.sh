#!/usr/bin/env bash
# Make data/gpu-corpus/ HERE, for benchmarks/gpu_chess.sh on the GPU machine (no network there, no Stockfish):
#
#   bash benchmarks/gpu_chess_corpus.sh [CORPUS...]     (data folders from `lab chess data synth|lichess`)
#   GAMES=16000 LOCK="flock /tmp/lab-heavy.lock nice -n 5" bash benchmarks/gpu_chess_corpus.sh   (makes one)
#
# 1. without CORPUS: `lab chess data synth --preset noisy --players 4 --seed 0` (the experts of the CPU
#    transcendence run), GAMES games; 2. `lab chess data vocab` (moves seen >= MIN_COUNT times, default 5);
# 3. `lab chess data tokenize --max-mib MAX_MIB` (default 56: the device tool carries 64 MiB with the tree);
# 4. site/: pure-Python packages the GPU image lacks (python-chess). data/ is ignored by git; the device
# tool takes it with `carry: ["data/gpu-corpus"]`. Knobs: GAMES, MIN_COUNT, MAX_MIB, LOCK, OUT_CORPUS, SYNTH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT_CORPUS:-data/gpu-corpus}"
GAMES="${GAMES:-16000}"
MIN_COUNT="${MIN_COUNT:-5}"
MAX_MIB="${MAX_MIB:-56}"
LOCK="${LOCK:-}"
SYNTH_OUT="${SYNTH_OUT:-data/gpu-synth}"  # stays here: only $OUT travels
LAB=".venv/bin/lab"
[ -x "$LAB" ] || LAB="lab"
export LAB_PROGRESS="${LAB_PROGRESS:-0}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CORPORA=("$@")
t0=$(date +%s)
if [ ${#CORPORA[@]} -eq 0 ]; then
  # shellcheck disable=SC2086
  $LOCK "$LAB" chess data synth --preset noisy --players 4 --games "$GAMES" --rating-games 0 --vote-games 0 \
    --seed 0 -j 2 --out "$SYNTH_OUT"
  CORPORA=("$SYNTH_OUT")
fi
t1=$(date +%s)
"$LAB" chess data vocab "${CORPORA[@]}" --out "$OUT/vocab.json" --min-count "$MIN_COUNT" | tee "$OUT/vocab.log"
"$LAB" chess data tokenize "${CORPORA[@]}" --vocab "$OUT/vocab.json" --out "$OUT/corpus" --max-mib "$MAX_MIB" \
  --force | tee "$OUT/tokenize.log"
rm -rf "$OUT/site" && mkdir -p "$OUT/site"
CHESS_DIR="$(.venv/bin/python -c 'import chess, os; print(os.path.dirname(chess.__file__))')"
cp -r "$CHESS_DIR" "$OUT/site/chess"
find "$OUT/site" -name __pycache__ -prune -exec rm -rf {} +
t2=$(date +%s)
{
  echo "made $(date -u +%FT%TZ) at $(git rev-parse --short HEAD) by benchmarks/gpu_chess_corpus.sh"
  echo "corpora: ${CORPORA[*]}; GAMES=$GAMES MIN_COUNT=$MIN_COUNT MAX_MIB=$MAX_MIB"
  echo "synth $((t1 - t0)) s, vocab + tokenize $((t2 - t1)) s"
  cat "$OUT/vocab.log" "$OUT/tokenize.log"
} > "$OUT/provenance.txt"
du -sh "$OUT/corpus" "$OUT/site" "$OUT" | tee -a "$OUT/provenance.txt"
