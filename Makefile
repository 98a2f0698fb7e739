# Two commands: `make demo` (the provider's main job against the built-in simulator) and `make test`.
# Each creates .venv if needed and installs what it needs; nothing else is assumed but Python 3.11+ and make.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
AIRFLOW_VERSION ?= 3.3.2
# extra requirements for one Airflow line, e.g. pins its own dependencies need (see .ci/run)
AIRFLOW_PINS ?=
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
PIP_QUIET := 2>&1 | { grep -vE '^WARNING: Location .* is ignored' || true; }
# setuptools tells every editable install of a flat layout to beware of same-named folders: noise for a person
EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

BENCH_STAMP := $(VENV)/.installed-bench
# the `docs` extra (Sphinx, MyST, furo) for `make docs`
DOCS_STAMP := $(VENV)/.installed-docs
# the `cluster` extra (Celery provider, PostgreSQL drivers) for tests/cluster and `make cluster`
CLUSTER_STAMP := $(VENV)/.installed-cluster
# Stoplight Prism (npm) serves Cloudflare's schema for tests/contract/test_hook_against_prism.py
PRISM_STAMP := .ci/node_modules/.package-lock.json

.PHONY: help install prism services lint test pytest demo ui bench docs clean

help:
	@echo "make demo   deploy gate, fleet health check and health-change watcher against the local Cloudflare simulator"
	@echo "make ui     Airflow's UI on 127.0.0.1 with the example DAGs and the simulator (Ctrl-C stops it all)"
	@echo "make test   lint (ruff, mypy) and run every test (installs PostgreSQL and Redis for the cluster test if absent)"
	@echo "make bench  benchmarks; regenerates docs/benchmarks.md"
	@echo "make docs   the documentation site (Sphinx, warnings are errors) into docs/_build/html"
	@echo "make cluster  the provider on PostgreSQL + Celery + 2 triggerers (one killed), step by step"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11, 3.12 or 3.13 on PATH)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing apache-airflow==$(AIRFLOW_VERSION)$(if $(AIRFLOW_PINS), $(AIRFLOW_PINS)) and this project (editable, test extra) into $(VENV)"
	@$(BIN)/python -m pip install -q --upgrade pip $(PIP_QUIET)
	@$(EDITABLE) $(BIN)/python -m pip install -q "apache-airflow==$(AIRFLOW_VERSION)" $(AIRFLOW_PINS) -e '.[test]' $(PIP_QUIET)
	@rm -f $(VENV)/.installed-[0-9]*
	@touch $(STAMP)

install: $(STAMP)

prism:
	@if command -v npm >/dev/null 2>&1; then \
	  if [ ! -f $(PRISM_STAMP) ] || [ .ci/package-lock.json -nt $(PRISM_STAMP) ]; then \
	    echo "Installing Stoplight Prism for the contract tests (npm ci --prefix .ci)"; \
	    npm ci --silent --prefix .ci --no-audit --no-fund >/dev/null \
	      || echo "npm ci failed: the Prism contract tests will be skipped"; \
	  fi; \
	elif [ ! -x .ci/node_modules/.bin/prism ]; then \
	  echo "npm not found: the Prism contract tests will be skipped (install Node.js and npm to run them)"; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# every test: the cluster test (tests/cluster) needs PostgreSQL, Redis and the cluster extra too
test: lint services install-cluster pytest

services:
	@bash scripts/install_services.sh

pytest: install prism
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

demo: install
	$(BIN)/python scripts/demo.py

ui: install
	$(BIN)/python scripts/ui.py $(UI_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(EDITABLE) $(BIN)/python -m pip install -q -e '.[test,bench]' "apache-airflow==$(AIRFLOW_VERSION)" $(PIP_QUIET)
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

$(DOCS_STAMP): $(STAMP)
	@echo "Installing the docs extra (Sphinx, MyST, furo) into $(VENV)"
	@$(EDITABLE) $(BIN)/python -m pip install -q -e '.[test,docs]' "apache-airflow==$(AIRFLOW_VERSION)" $(AIRFLOW_PINS) $(PIP_QUIET)
	@touch $(DOCS_STAMP)

# autodoc imports the package, and so Airflow: its home is kept in .airflow, away from ~/airflow
docs: $(DOCS_STAMP)
	AIRFLOW_HOME="$(CURDIR)/.airflow" AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING $(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
	@echo "Documentation: docs/_build/html/index.html"

.PHONY: install-cluster cluster
$(CLUSTER_STAMP): $(STAMP)
	@echo "Installing the cluster extra (Celery provider, psycopg2, asyncpg) into $(VENV)"
	@$(EDITABLE) $(BIN)/python -m pip install -q -e '.[test,cluster]' "apache-airflow==$(AIRFLOW_VERSION)" $(AIRFLOW_PINS) $(PIP_QUIET)
	@touch $(CLUSTER_STAMP)

install-cluster: $(CLUSTER_STAMP)

# needs PostgreSQL's server and redis-server (apt-get install -y postgresql redis-server); CLUSTER_ARGS=--queues...
cluster: $(CLUSTER_STAMP)
	$(BIN)/python scripts/cluster.py $(CLUSTER_ARGS)

clean:
	rm -rf $(VENV) .airflow .mypy_cache .ruff_cache .pytest_cache docs/_build docs/reference/modules
