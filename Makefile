# The two commands a newcomer needs:  `make train`  and  `make test`.
# Each creates .venv on first use and installs what it needs from pyproject.toml:
# `make train` only the runtime dependencies; `make test` adds pytest and PyTorch (the oracle).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
TESTDEPS := $(VENV)/.installed-test

.PHONY: train demo test lint venv clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $(RUNTIME)

$(TESTDEPS): $(RUNTIME)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(TESTDEPS)

venv: $(RUNTIME)

train: $(RUNTIME)
	$(BIN)/layerwise train

demo: $(RUNTIME)
	$(BIN)/python examples/mlp_digits.py

test: $(TESTDEPS) lint
	$(BIN)/python -m pytest -q -n 2 --doctest-modules layerwise tests

# ruff (pyflakes, pycodestyle, import order, bugbear, pyupgrade) and mypy over the package;
# the rules are in pyproject.toml.
lint: $(TESTDEPS)
	$(BIN)/ruff check layerwise
	$(BIN)/mypy

bench: $(TESTDEPS)
	$(BIN)/python benchmarks/bench_densenet.py

clean:
	rm -rf $(VENV) .pytest_cache
