# dictamesh-connectors: the two commands a new user runs are `make demo` and `make test`.
# Both create the virtualenv, install the package with every extra, and start the
# local services they need (PostgreSQL, Kafka, a MongoDB-compatible server).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
LINT_PATHS := dictamesh_connectors tests $(wildcard benchmarks examples)
SERVICES := PYTHON=$(abspath $(PY)) scripts/services.sh

.PHONY: help install test unit integration lint demo services-up services-down services-status bench clean

help:
	@echo "make demo            run the demo on local services (starts them)"
	@echo "make test            lint-free unit + integration tests on real local services"
	@echo "make unit            unit tests only (no services)"
	@echo "make lint            ruff + mypy --strict"
	@echo "make bench           benchmarks: connector vs raw driver"
	@echo "make services-up|services-down|services-status"

$(STAMP): pyproject.toml
	@echo "==> creating the virtualenv $(VENV) and installing dictamesh-connectors[all,dev]"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev]'
	@touch $(STAMP)

install: $(STAMP)

services-up: $(STAMP)
	@$(SERVICES) up

services-down:
	@$(SERVICES) down

services-status:
	@$(SERVICES) status

# Starts the services, runs every test, then stops the services it started
# (KEEP_SERVICES=1 leaves them running for a faster next run).
test: $(STAMP)
	@$(SERVICES) up
	@echo "==> running the tests (unit + integration)"
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ "$(KEEP_SERVICES)" != "1" ]; then $(SERVICES) down; fi; \
	exit $$status

unit: $(STAMP)
	@$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

integration: $(STAMP)
	@$(SERVICES) up
	@$(PY) -m pytest -m integration $(PYTEST_ARGS)

lint: $(STAMP)
	@echo "==> ruff"
	@$(PY) -m ruff check $(LINT_PATHS)
	@$(PY) -m ruff format --check $(LINT_PATHS)
	@echo "==> mypy --strict"
	@$(PY) -m mypy dictamesh_connectors

demo: $(STAMP)
	@$(SERVICES) up
	@$(PY) examples/demo.py

bench: $(STAMP)
	@$(SERVICES) up
	@for b in benchmarks/*_bench.py; do echo "==> $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
