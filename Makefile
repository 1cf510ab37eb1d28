# The two commands of the README: `make demo` and `make test`. Both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: demo dev test bench lint format stack-up stack-down mysql-server venv clean pipes-bundle

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	@touch $@

# A MySQL-compatible server binary for the throwaway server (skipped when MIGRATION_MYSQL_URL is set).
mysql-server:
	@bash scripts/ensure_mysql_server.sh

# the demo ships two migrations (orders with legacy_copy; shipments update_only into an
# existing table DynamoDB only partly covers); MIGRATION_SPEC=<file or folder> overrides it
DEMO_SPEC := $(CURDIR)/migration_assets/examples
demo: venv mysql-server
	MIGRATION_SPEC="$${MIGRATION_SPEC:-$(DEMO_SPEC)}" $(PY) -m migration_assets.devstack demo

dev: venv mysql-server
	$(PY) -m migration_assets.devstack dev

test: venv mysql-server
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

# One day of 1,000,000 items through every asset with its checks, several days at once, a day's
# merge as the target grows, the BIGINT copy: writes bench/results/latest.json and appends to
# bench/RESULTS.md (docs/speed.md).
bench: venv mysql-server
	$(PY) -m bench.e2e $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

format: venv
	$(VENV)/bin/ruff format migration_assets migration_assets_tests

# What EMR Serverless / Glue run for MIGRATION_PARQUET_ENGINE (docs/beyond-one-machine.md).
pipes-bundle: venv
	$(PY) -m migration_assets.remote.bundle dist/pipes

stack-up: venv mysql-server
	$(PY) -m migration_assets.devstack up

stack-down: venv
	$(PY) -m migration_assets.devstack down

clean: stack-down
	rm -rf .devstack .env
