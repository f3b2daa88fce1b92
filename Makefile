# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
# torch/torchaudio pinned to the pair verified together on CPU and CUDA.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
DEMO_DIR ?= artifacts/demo

.PHONY: install demo test test-fast test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e '.[dev,clone,eval,cluster]'
	touch $(STAMP)

install: $(STAMP)

## Prepare the bundled demo corpus, train both stages briefly, synthesize a wav.
demo: $(STAMP)
	DEMO_DIR=$(DEMO_DIR) bash scripts/demo.sh

## Lint + the layer contract (pyproject [tool.importlinter]) + the test suite (slow tests included; CI runs this).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check . || true

## Benchmarks as JSON (see ../shared/PERFORMANCE.md for the workloads).
bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(DEMO_DIR) outputs multirun wandb .pytest_cache
