# Ordersmith's front door. Every target does its own set-up and can be run again.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Test processes: each builds a database of its own (ordersmith_test_<pid>); `make test TEST_WORKERS=0` runs in one.
# The 20 slowest tests are listed at the end: CI has 15 minutes in all, so watch them.
TEST_WORKERS ?= 2

$(UV):
	python3 -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python python3
	@touch $@

.PHONY: install
install: $(VENV)/.synced ## Create the virtual environment from uv.lock

.PHONY: run
run: install ## Serve the API, relay and workers on embedded defaults (PostgreSQL included)
	$(BIN)/ordersmith run

.PHONY: test
test: install ## Run unit and integration tests (embedded PostgreSQL unless TEST_DATABASE_URL is set)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal --durations=20

.PHONY: lint
lint: install ## Check formatting, lint rules, types and layering
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: format
format: install ## Format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: bench
bench: install ## Measure provisioning, sign-up, migrations, order placement and order lists; writes .bench/results.json
	$(BIN)/python -m tests.bench

.PHONY: clean
clean: ## Stop nothing, delete local state: the virtual environments and .ordersmith/
	rm -rf $(VENV) .uv .ordersmith .bench

.PHONY: help
help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'
