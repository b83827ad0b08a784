# The two set-up commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# `make run` is for development unless told otherwise; production sets DEBUG=false and real secrets.
RUN_DEBUG := $(or $(DEBUG),true)

.PHONY: run test install install-dev migrate lint typecheck pytest superuser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install sandbox frontend
	@DEBUG=$(RUN_DEBUG) $(BIN)/python -m hestami_ai.devsecrets
	DEBUG=$(RUN_DEBUG) $(BIN)/python manage.py migrate --noinput -v 1
	@if [ "$(RUN_DEBUG)" != "true" ]; then DEBUG=$(RUN_DEBUG) $(BIN)/python manage.py collectstatic --noinput -v 0; fi
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: make superuser; stop with Ctrl-C)"
	@if [ "$(RUN_DEBUG)" = "true" ]; then echo "DEBUG is on (development): to measure, use bench/proxy.py, which runs it off; --debug shows what DEBUG adds (about 0.1-0.2 ms per proxied request)."; fi
	DEBUG=$(RUN_DEBUG) HOST=$(HOST) WEB_PORT=$(PORT) exec $(BIN)/honcho -f Procfile start

superuser: install
	DEBUG=$(RUN_DEBUG) $(BIN)/python manage.py createsuperuser

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev
	DEBUG=true $(BIN)/mypy .

pytest: install-dev sandbox frontend browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Code interpreter sandbox (code_interpreter/sandbox/): bubblewrap, node and the sandbox's own
# Python runtime in var/sandbox-runtime. Idempotent; returns at once when nothing changed.
.PHONY: sandbox
sandbox:
	@bash scripts/install-sandbox.sh

# The chat UI's browser libraries (frontend/package.json) copied to frontend/vendor/, and Debian's
# Chromium for the browser tests (tests/browser/). Both idempotent and quick when nothing changed.
.PHONY: frontend browser
frontend:
	@bash scripts/install-frontend.sh
browser:
	@bash scripts/install-browser.sh
