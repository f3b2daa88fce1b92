# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
# torch/torchaudio pinned to the pair verified together on CPU and CUDA.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
DEMO_DIR ?= artifacts/demo
# pytest-xdist workers for the suite: one per core of the 2-core CI machine (tests/conftest.py gives each worker one
# torch thread, builds shared fixtures once per run and schedules whole files, heavy ones first). WORKERS=0 runs
# everything in one process.
WORKERS ?= 2
PYTEST  := $(VENV)/bin/python -m pytest -q $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadscope)

.PHONY: install demo test test-fast test-slow lint bench gpu-check clean

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
	$(PYTEST)

## The same checks without the slow tests (training runs, CLI subprocesses, multi-process); meant to stay under
## 3 min on 2 cores: mark a test `@pytest.mark.slow` when it takes more than ~10 s.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check . || true

## Benchmarks as JSON (see ../shared/PERFORMANCE.md for the workloads): machine bounds, every runtime, quality
## gates; with a GPT-SoVITS checkout in REFERENCE, the reference runs in the same session and ratios are added.
REFERENCE ?=
bench: $(STAMP)
	$(PY) scripts/bench.py --out bench.json $(if $(REFERENCE),--reference $(REFERENCE))

## One-shot GPU check (<= 8 min on one GPU): training MFU, SoVITS bf16/fp16, compiled decode, RTF, loader, DDP.
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py --out gpu_check.json

clean:
	rm -rf $(DEMO_DIR) outputs multirun wandb .pytest_cache
