# OpenSMM developer commands. Quick start: `make up` (platform + demo), `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install up down status logs test test-unit lint format validate-deploy check clean bench chaos

help:
	@echo "make up               run Kafka, Postgres and the four services with a demo (Ctrl-C stops)"
	@echo "make test             start Kafka + Postgres if needed and run every test"
	@echo "make test-unit        the unit tests only (no Kafka or Postgres)"
	@echo "make lint             ruff, ruff format --check, mypy --strict, import contracts"
	@echo "make validate-deploy  check docker-compose.yml, deploy/k8s and Prometheus files offline"
	@echo "make bench            every benchmark scenario on the dev stack (docs/benchmarks.md)"
	@echo "make chaos            every fault scenario on the dev stack (docs/reliability.md)"
	@echo "make down / status / logs   stop, inspect or read the local dev stack"

# Reinstall when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/smm dev up --demo --foreground

down: install
	$(BIN)/smm dev down

status: install
	$(BIN)/smm dev status

logs: install
	$(BIN)/smm dev logs

test: install
	$(BIN)/smm dev up --infra-only
	./devstack/install-prometheus.sh >/dev/null
	$(BIN)/pytest

bench: install
	$(BIN)/smm dev up --infra-only
	$(BIN)/python -m bench

chaos: install
	$(BIN)/python -m reliability

test-unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

validate-deploy: install
	PATH="$(CURDIR)/$(BIN):$$PATH" .ci/validate-deploy

check: lint validate-deploy test

clean:
	-$(BIN)/smm dev down
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
