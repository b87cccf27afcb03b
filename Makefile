# The README's commands. Each target does all set-up first (idempotent): system packages, .venv, installs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lab-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system run test lint format bench bench-tables clean

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml shared/pyproject.toml packages/sfa/pyproject.toml packages/transcendence/pyproject.toml packages/learnsched/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e 'shared[dev,ray,tensorboard,mlflow]' -e 'packages/sfa[dev]' \
		-e 'packages/transcendence[dev]' -e 'packages/learnsched[dev]'
	@touch $(STAMP)

run: setup
	$(VENV)/bin/lab demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) benchmarks/run_all.py

bench-tables: setup
	$(PY) benchmarks/run_all.py --tables

clean:
	rm -rf $(VENV) runs
