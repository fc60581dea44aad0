# Plugpay — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
UV := python3 -m uv

include deploy/local/infra.mk

.PHONY: images compose-up compose-down help bootstrap web-deps venv sync run check test test-packages lint typecheck schemas clean up down bench bench-smoke reliability

# Every Python package of the tree; lint and typecheck cover them all.
LINTED := libs services apps bench tests scripts
TYPED := $(wildcard libs/*/src services/*/src apps/*/src)

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

bootstrap: ## install uv if missing (PyPI) — everything else is installed by uv
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv

web-deps: ## the web front-ends' libraries (web/node_modules, from web/package-lock.json)
	@cd web && npm ci --no-audit --no-fund --loglevel=error

venv: bootstrap ## create .venv with every package of the workspace (no web libraries)
	@$(UV) sync --all-packages --quiet

sync: venv web-deps ## .venv and the web front-ends' libraries

run: sync ## the main job: Plugpay all-in-one on http://127.0.0.1:8000 (embedded PostgreSQL)
	@$(UV) run --no-sync plugpay run

check: venv ## the fast tier (< 3 min, no Kafka, no browser): lint, types, every package's unit tests
	@bash scripts/check.sh

test: sync ## install everything, start Kafka and PostgreSQL, run every test
	@bash scripts/test.sh

test-packages: sync ## each package synced alone and its tests run (undeclared imports fail)
	@bash scripts/test-packages.sh

lint: venv ## ruff check and format check over every package (libs, services, apps, bench, tests, scripts)
	@$(UV) run --no-sync ruff check $(LINTED)
	@$(UV) run --no-sync ruff format --check $(LINTED)

typecheck: venv ## mypy over libs, services and apps (strict; exceptions in pyproject.toml)
	@$(UV) run --no-sync mypy $(TYPED)

schemas: sync ## regenerate docs/events/*.json from libs/events
	@$(UV) run --no-sync python -m plugpay_events.schemas docs/events

up: sync ## the distributed stack: each service its own process, Kafka, PostgreSQL, nginx on :8080
	@bash scripts/stack.sh up

down: ## stop the distributed stack (Kafka and PostgreSQL keep running: make infra-down)
	@bash scripts/stack.sh down

reliability: sync ## chaos, redelivery, fuzzing and security suites (tests/reliability; isolated stack)
	@python3 -m uv run --no-sync pytest tests/reliability -p no:cacheprovider

bench: sync ## the benchmark suite on an isolated stack (bench/run.sh, ~40 min): bench/results, docs/performance.md
	@bash bench/run.sh

bench-smoke: sync ## every benchmark for a few seconds (CI keeps them working); bench/results/*-smoke.json
	@BENCH_SMOKE=1 bash bench/run.sh

images: venv ## Docker images of every service + Kafka, PostgreSQL, nginx (starts dockerd; sizes)
	@bash deploy/docker/images.sh build

compose-up: images ## the whole product on Docker Compose, loopback only (deploy/compose; :8280)
	@bash deploy/compose/compose.sh up

compose-down: ## stop the Compose deployment (named volumes kept: compose.sh down --volumes drops them)
	@bash deploy/compose/compose.sh down

clean: ## remove caches (not data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .cache/venvs
