#!/usr/bin/env bash
# System packages lab needs: Stockfish (lab chess), Fashion-MNIST (lab sfa), PostgreSQL (lab sched pg),
# Chromium (the report's browser test) and PolyGlot (a second UCI driver in the engine's tests).
# Installs what is missing with apt when running as root; otherwise says what to install. Idempotent.
set -u
missing=()
command -v stockfish >/dev/null 2>&1 || [ -x /usr/games/stockfish ] || missing+=(stockfish)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v polyglot >/dev/null 2>&1 || [ -x /usr/games/polyglot ] || missing+=(polyglot)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: apt-get install -y ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || { echo "setup: apt-get could not install ${missing[*]}" >&2; exit 1; }
else
  echo "setup: missing system packages: ${missing[*]}" >&2
  echo "setup: install them as root (sudo apt-get install -y ${missing[*]}); the parts that need them will say so" >&2
fi
