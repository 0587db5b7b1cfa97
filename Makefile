# Two commands on a fresh machine: `make up` (the whole local stack) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down test lint typecheck check bench clean

$(STAMP): pyproject.toml setup.py shared/pg/wire/_framing.c shared/recording/_tape.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Create the virtualenv, install everything, run the local stack in the foreground (Ctrl-C stops it).
up: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/airlock dev up

down: $(STAMP)
	$(BIN)/airlock dev down

## The test suite: unit tests, then integration tests against the real local stack.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

## Benchmarks (not tests): proxy vs direct PostgreSQL vs pgbouncer, side by side.
bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/bench

clean:
	rm -rf $(VENV) .airlock .pytest_cache .mypy_cache .ruff_cache
