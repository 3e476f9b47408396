# The two commands of README.md: `make run` and `make test`.
SHELL := /bin/bash
CONFIG ?= config/demo.yaml
PYTEST_ARGS ?=

.PHONY: run test setup lint bench clean-var

setup:
	@scripts/setup

run: setup
	@export DATABASE_URL="$$(scripts/ensure-postgres)" && \
	 export LIANLUO_ASTERISK_PREFIX="$$(scripts/install-asterisk 2>/dev/null)" && \
	 exec .venv/bin/python -m app run --config $(CONFIG)

test: setup
	@export DATABASE_URL="$$(scripts/ensure-postgres)" && \
	 export LIANLUO_ASTERISK_PREFIX="$$(scripts/install-asterisk 2>/dev/null)" && \
	 .venv/bin/ruff check app tests benchmarks && \
	 .venv/bin/mypy && \
	 .venv/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check app tests benchmarks && .venv/bin/ruff format --check app tests benchmarks && .venv/bin/mypy

clean-var:
	rm -rf var
