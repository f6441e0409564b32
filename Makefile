# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv on first use. `make demo` installs only what the demo needs: torch and the
# package with its `lab` extra (plots, progress bars, TensorBoard logs). `make test` adds the
# `dev` extra on top (pytest, hypothesis, ruff, mypy, scipy, and Triton for the triton backend's
# tests), the `ray` extra (the sweep's Ray engine, tested on a local instance) and the `docs` extra (its tests build the site with --strict), so `make demo` then
# `make test` installs torch and the lab packages once. `make docs` builds the documentation site
# into site/ (the `docs` extra only, on top of the demo's); `make docs-check` also loads it in
# headless Chromium (the `docs-check` extra, and Debian's chromium package if none is on PATH).
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch on this machine; override for other platforms, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
DOCS_STAMP := $(VENV)/.installed-docs
CHECK_STAMP := $(VENV)/.installed-docs-check

.PHONY: demo test lint typecheck pytest bench clean install install-demo docs docs-check

$(DEMO_STAMP): pyproject.toml
	@echo "installing into $(VENV): $(TORCH_SPEC) and gumbel-softmax[lab] (matplotlib, tqdm, tensorboard, numpy; numba)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q $(TORCH_SPEC)
	@$(BIN)/python -m pip install -q -e ".[lab]"
	@touch $@

$(TEST_STAMP): $(DEMO_STAMP) pyproject.toml
	@echo "installing into $(VENV): the test tools, gumbel-softmax[dev] (pytest, pytest-xdist, hypothesis, ruff, mypy, scipy, triton), [ray] (the sweep's Ray engine) and [docs] (mkdocs, for the docs build test)"
	@$(BIN)/python -m pip install -q -e ".[lab,dev,ray,docs]"
	@touch $@ $(DOCS_STAMP)

$(DOCS_STAMP): $(DEMO_STAMP) pyproject.toml
	@echo "installing into $(VENV): gumbel-softmax[docs] (mkdocs, mkdocs-material, mkdocstrings, MathJax)"
	@$(BIN)/python -m pip install -q -e ".[lab,docs]"
	@touch $@

$(CHECK_STAMP): $(DOCS_STAMP) pyproject.toml
	@echo "installing into $(VENV): gumbel-softmax[docs-check] (playwright, driving the system's chromium)"
	@$(BIN)/python -m pip install -q -e ".[lab,docs-check]"
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ echo "installing Debian's chromium (apt-get; needs root)"; \
		  apt-get update -q && apt-get install -y -q chromium; }
	@touch $@

install-demo: $(DEMO_STAMP)

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m gumbel_softmax.lab.demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts docs
	$(BIN)/ruff format --check src tests benchmarks scripts docs

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs serially), each test file on one
# worker (module-scoped fixtures, e.g. the lab's registry runs, are built once).
PYTEST_WORKERS ?= auto
pytest: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck pytest

# The documentation site, with warnings as errors; it runs the tutorials (docs/tutorials/*.py).
# `make test` builds it too (tests/docs), so a broken reference fails the suite.
docs: $(DOCS_STAMP)
	DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

# The built site's links, and its home page, API reference and a guide in headless Chromium
# (console errors, failed requests, untypeset maths); screenshots in build/docs-check/.
docs-check: docs $(CHECK_STAMP)
	$(BIN)/python docs/check_site.py site --screenshots build/docs-check

# Benchmarks (minutes; results are written beside each script). The VAE rows take hours on a CPU:
#   $(BIN)/python benchmarks/vae/run.py --help
bench: $(DEMO_STAMP)
	$(BIN)/python benchmarks/core/bench.py
	$(BIN)/python benchmarks/kernels/bench.py
	$(BIN)/python benchmarks/estimators/bench.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
