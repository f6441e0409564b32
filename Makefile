# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use. `make demo` installs only what the demo needs: torch and the
# package with its `lab` extra (plots, progress bars, TensorBoard logs). `make test` adds the
# `dev` extra on top (pytest, hypothesis, ruff, mypy, scipy, and Triton for the triton backend's
# tests), so `make demo` then `make test` installs torch and the lab packages once.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch on this machine; override for other platforms, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck pytest bench clean install install-demo

$(DEMO_STAMP): pyproject.toml
	@echo "installing into $(VENV): $(TORCH_SPEC) and gumbel-softmax[lab] (matplotlib, tqdm, tensorboard, numpy; numba)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q $(TORCH_SPEC)
	@$(BIN)/python -m pip install -q -e ".[lab]"
	@touch $@

$(TEST_STAMP): $(DEMO_STAMP) pyproject.toml
	@echo "installing into $(VENV): the test tools, gumbel-softmax[dev] (pytest, hypothesis, ruff, mypy, scipy, triton)"
	@$(BIN)/python -m pip install -q -e ".[lab,dev]"
	@touch $@

install-demo: $(DEMO_STAMP)

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m gumbel_softmax.lab.demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# Benchmarks (minutes; results are written beside each script). The VAE rows take hours on a CPU:
#   $(BIN)/python benchmarks/vae/run.py --help
bench: $(DEMO_STAMP)
	$(BIN)/python benchmarks/core/bench.py
	$(BIN)/python benchmarks/kernels/bench.py
	$(BIN)/python benchmarks/estimators/bench.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
