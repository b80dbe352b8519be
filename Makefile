# The README's commands. `make demo` runs the whole loop locally; `make test` runs every test.
# Everything a target needs is installed from this repository's own files: a venv from pyproject.toml, the
# Kubernetes test binaries built from the Go module proxy (hack/testenv.sh, cached in ~/.cache/assay),
# the LiteLLM proxy in its own venv (hack/litellm.sh), the upstream gateway CRDs from their Go modules
# (hack/upstream-crds.sh) and Debian's prometheus, alertmanager and chromium (hack/debian-packages.sh, as root).
# Under CI (CI=true) a real part that cannot be installed fails the run; locally its tests skip.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

IMAGE ?= assay:dev

.PHONY: all venv testbin litellm upstream-crds debian-packages deps lint crds-check unit integration test demo crds bench clean image kind-up e2e

all: test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./lab
	touch $@

testbin:
	bash hack/testenv.sh

litellm:
	bash hack/litellm.sh

upstream-crds:
	bash hack/upstream-crds.sh

debian-packages:
	bash hack/debian-packages.sh

deps: venv testbin litellm upstream-crds debian-packages

lint: venv
	$(BIN)/ruff check operator lab tests benchmarks
	$(BIN)/ruff format --check operator lab tests benchmarks
	$(BIN)/mypy

crds-check: venv
	$(BIN)/python -m assay.api.crdgen --check

crds: venv
	$(BIN)/python -m assay.api.crdgen
	cp crds/*.yaml charts/assay/crds/
	$(BIN)/python -m assay.api.docgen

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: deps
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test: deps lint crds-check
	$(BIN)/pytest $(PYTEST_ARGS)

demo: deps
	$(BIN)/python -m assaylab.demo

bench: deps
	$(BIN)/python benchmarks/run_all.py

# For machines with Docker and kind (not runnable where no Docker engine runs).
image:
	docker build -t $(IMAGE) .

kind-up:
	kind get clusters | grep -qx assay || kind create cluster --name assay --config kind-config.yaml

e2e: image kind-up
	bash hack/kind-e2e.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
