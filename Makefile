# One entry point. `make run`: set up and run the whole pipeline on the built-in synthetic world.
# `make test`: set up and run the whole test suite (CI); `make quick`: the suite without the
# end-to-end tests marked `slow`. All create .venv from pyproject.toml first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export OMP_WAIT_POLICY := PASSIVE
export PYTHONHASHSEED := 0

.PHONY: setup run test quick lint docs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/dvc repro

# Two workers (pytest-xdist) on the 2-core machine, each taking whole test files so that
# module-scoped worlds are built once: 518-616 s of pytest from a fresh clone (README, "How long").
test: setup
	$(BIN)/pytest -n 2 --dist loadfile

quick: setup
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

lint: setup
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

# The run's figures in docs/*.md and README.md, rewritten from the committed reports/.
docs: setup
	$(BIN)/python docs/figures.py

bench: setup
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/scoring.py

clean:
	rm -rf data reports mlruns.db mlartifacts .pytest_cache
	find features models pipelines -name '*.nb[ic]' -delete  # numba's caches: see docs/explanations.md
