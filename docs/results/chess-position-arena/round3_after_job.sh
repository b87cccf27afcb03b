#!/bin/bash
if [ "$(date -u +%H%M)" -ge 0330 ]; then echo "$(date -u +%H:%M:%S) UTC: lock came after 03:30, not run (team deadline)"; exit 0; fi
cd /work/main
echo "$(date -u +%H:%M:%S) UTC start; commit $(git rev-parse --short HEAD); git status of the measured files:"; git status --short benchmarks/chess_position.py packages/transcendence/src/lab_transcendence/
echo "## /tmp/lab-heavy2 .venv/bin/python benchmarks/chess_position.py"
timeout 300 .venv/bin/python benchmarks/chess_position.py
echo "$(date -u +%H:%M:%S) UTC"
echo "## breakdown /tmp/cp_prof/brk2.py"
timeout 100 .venv/bin/python /tmp/cp_prof/brk2.py
echo "$(date -u +%H:%M:%S) UTC end"
