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
SERVICE_NAMES := postgres kafka mongodb ferretdb redis

.PHONY: help install test unit integration lint demo services-up services-down services-status bench batch-job clean test-mongodb-stream docs chaos

help:
	@echo "make demo            run examples/demo.py: the full story on the local services (starts them)"
	@echo "make test            unit + integration tests on real local services (starts, then stops them)"
	@echo "make unit            unit tests only (no services)"
	@echo "make lint            ruff + mypy --strict"
	@echo "make bench           benchmarks: connector vs raw driver"
	@echo "make test-mongodb-stream  stream() over 1,000,000 documents on both MongoDB servers (minutes)"
	@echo "make chaos           randomized fault campaign: 1,000 faults on private servers, summary table (SEED=n FAULTS=n replays)"
	@echo "make batch-job       examples/batch_job.py with 100,000 rows (PostgreSQL -> Kafka + MongoDB + files)"
	@echo "make docs            build the documentation site (MkDocs, strict: any warning fails) into build/site"
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

# Starts the services, runs every test, then stops the services this run
# started (ones already running before are left alone; KEEP_SERVICES=1 leaves
# all of them running for a faster next run). Fails when a service cannot
# start, when any test fails, and when pytest collects no test (exit 5).
test: $(STAMP)
	@echo "==> make test: the unit tests and the integration tests against real local servers"
	@started=""; \
	for s in $(SERVICE_NAMES); do \
		PYTHON=$(abspath $(PY)) bash scripts/services/$$s.sh status >/dev/null 2>&1 || started="$$started $$s"; \
	done; \
	echo "==> starting the test services (scripts/services.sh up):$${started:- all already running}"; \
	if ! $(SERVICES) up; then \
		echo "make test: FAILED: a test service could not start (see its log above)" >&2; \
		if [ "$(KEEP_SERVICES)" != "1" ] && [ -n "$$started" ]; then $(SERVICES) down $$started >/dev/null 2>&1 || true; fi; \
		exit 1; \
	fi; \
	echo "==> running the tests: $(PY) -m pytest $(PYTEST_ARGS)"; \
	status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: pytest collected no tests (exit status 5); that is a failure" >&2; \
	fi; \
	if [ "$(KEEP_SERVICES)" != "1" ] && [ -n "$$started" ]; then \
		echo "==> stopping the services this run started:$$started (KEEP_SERVICES=1 keeps them)"; \
		$(SERVICES) down $$started; \
	fi; \
	if [ $$status -eq 0 ]; then echo "==> make test: all tests passed"; \
	else echo "==> make test: FAILED (pytest exit status $$status)" >&2; exit 1; fi

# The long form of tests/integration/mongodb/test_stream.py (the default suite
# streams 20,000 documents): 1,000,000 documents, flat RSS, on both servers.
test-mongodb-stream: $(STAMP)
	@$(SERVICES) up mongodb ferretdb
	@DICTAMESH_MONGO_STREAM_DOCS=1000000 $(PY) -m pytest -m integration -k rss tests/integration/mongodb/test_stream.py $(PYTEST_ARGS)

# The randomized fault campaign (tests/chaos/): private PostgreSQL, SecantusDB,
# Kafka and HTTP servers it starts, kills and stops itself (never the shared
# services), 1,000 seeded faults under 32 threads, then the checks and a
# summary table. SEED=n replays a run's fault schedule; FAULTS=n changes the
# count; THREADS, PAUSE, GAP and PROXIES=off change the workload and the
# schedule. The summary prints the command that replays the run exactly.
# Ctrl-C stops the run and prints a partial summary (exit status 130).
# The default suite runs a ~100-fault version (test_short_campaign).
FAULTS ?= 1000
chaos: $(STAMP)
	@PYTHONPATH=$(CURDIR) $(PY) -m tests.chaos.campaign --faults $(FAULTS) $(if $(SEED),--seed $(SEED)) \
		$(if $(THREADS),--threads $(THREADS)) $(if $(PAUSE),--pause $(PAUSE)) $(if $(GAP),--gap $(GAP)) \
		$(if $(filter off,$(PROXIES)),--no-proxies)

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
	@echo "==> make demo: an HTTP API -> PostgreSQL -> Kafka -> MongoDB and files, in a thread pool, with a classified error, a retry and every connector's stats"
	@echo "==> starting the local services it uses (scripts/services.sh up postgres kafka mongodb); they keep running afterwards"
	@$(SERVICES) up postgres kafka mongodb || { echo "make demo: FAILED: a service could not start (see above)" >&2; exit 1; }
	@echo "==> running examples/demo.py"
	@$(PY) examples/demo.py
	@echo "==> make demo: done. The services are still running: 'make services-status', 'make services-down'"

# The documentation site: MkDocs + mkdocs-material, API reference from the
# docstrings (mkdocstrings). Strict: a broken link, a page missing from the
# nav or a reference that does not resolve fails the build.
docs: $(STAMP)
	@echo "==> make docs: building the documentation site into build/site (strict)"
	@NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet
	@echo "==> make docs: done; open build/site/index.html"

bench: $(STAMP)
	@$(SERVICES) up
	@for b in benchmarks/*_bench.py; do echo "==> $$b"; $(PY) $$b || exit 1; done

# The thread-pool batch job's tests at full size: 100,000 rows through
# PostgreSQL -> transform -> Kafka + MongoDB + a file export, exact counts,
# then a Ctrl-C and a resuming re-run (the default suite uses 5,000 rows).
batch-job: $(STAMP)
	@$(SERVICES) up postgres kafka mongodb
	@DICTAMESH_BATCH_ROWS=100000 $(PY) -m pytest -q tests/integration/test_batch_job.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
