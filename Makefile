# The two commands a newcomer needs:  `make train`  and  `make test`.
# Each creates .venv on first use and installs what it needs from pyproject.toml.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: train demo test venv clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

train: $(STAMP)
	$(BIN)/layerwise train

demo: $(STAMP)
	$(BIN)/python examples/mlp_digits.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_densenet.py

clean:
	rm -rf $(VENV) .pytest_cache
