# The two commands of README.md: `make run` and `make test`.
SHELL := /bin/bash
CONFIG ?= config/demo.yaml
PYTEST_ARGS ?=
# Test modules run two at a time (pytest-xdist, a whole module per worker: a module shares one
# running center). Most of a call test is waiting on real time, not on the CPU. TEST_WORKERS=0
# runs them one after another in this process. Modules go out in the order tests/conftest.py
# sorts them (long ones first, `alone` ones last), not xdist's own by number of tests.
TEST_WORKERS ?= 2

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
	 .venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check app tests benchmarks && .venv/bin/ruff format --check app tests benchmarks && .venv/bin/mypy

clean-var:
	rm -rf var

# Containers (README, "Containers"): Docker or Podman, whichever works here.
.PHONY: image compose-up compose-down compose-test

image:
	@scripts/containers image

compose-up: image
	@scripts/containers compose up -d

compose-down:
	@scripts/containers compose down

compose-test: setup
	@.venv/bin/python -m pytest tests/containers -v $(PYTEST_ARGS)
