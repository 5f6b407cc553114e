# costguard: the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS      := .dev/tools
UV         := $(TOOLS)/bin/uv
VENV       := .venv
PY         := $(VENV)/bin/python
PROTO_OUT  := libs/proto/src
PROTOS     := $(wildcard protos/costguard/v1/*.proto)
STAMP_SYNC := $(VENV)/.synced
STAMP_PROTO := $(PROTO_OUT)/costguard/v1/.generated

export UV_PYTHON_DOWNLOADS := never

WEB_STAMP  := web/node_modules/.installed

.PHONY: help install protos migrate dev test lint format typecheck pytest bench clean web web-check browser up down \
	e2e e2e-tools e2e-clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP_SYNC): $(UV) uv.lock pyproject.toml $(wildcard */pyproject.toml */*/pyproject.toml)
	$(UV) sync --frozen --all-packages
	@touch $@

$(STAMP_PROTO): $(STAMP_SYNC) $(PROTOS)
	rm -rf $(PROTO_OUT)/costguard/v1
	mkdir -p $(PROTO_OUT)/costguard/v1
	PATH=$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos \
		--python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTOS)
	@touch $@

install: $(STAMP_PROTO) ## Install pinned Python dependencies (uv.lock) and generate gRPC code

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

web: $(WEB_STAMP) ## Build the dashboard into web/dist (served by the gateway at /admin/cost)
	cd web && npm run build

web-check: $(WEB_STAMP) ## The dashboard's tsc --strict, eslint and vitest
	cd web && npm run typecheck && npm run lint && npm test

browser: ## Install Debian's Chromium for the browser tests, if it is missing
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "install Debian's chromium (sudo apt-get install chromium) for the browser tests" >&2; exit 1; fi; }

protos: ## Regenerate Python code and type stubs from protos/
	@rm -f $(STAMP_PROTO)
	@$(MAKE) --no-print-directory $(STAMP_PROTO)

migrate: install ## Apply pending migrations to DATABASE_URL (ARGS=down rolls back the newest)
	$(PY) -m costguard.common.migrate $(or $(ARGS),up)

dev: install web ## Run the whole system locally with a private Postgres and Redis
	$(PY) -m costguard.devstack.run

lint: install ## ruff format check and lint
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: install ## Format and autofix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install ## mypy --strict
	$(VENV)/bin/mypy

pytest: install web browser ## Run the test suite only
	$(VENV)/bin/pytest $(ARGS)

test: install ## Everything CI runs: lint, typecheck, the dashboard's checks, the whole test suite
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory web-check
	$(MAKE) --no-print-directory pytest

# docker compose, podman compose, podman-compose or docker-compose: the first one present.
COMPOSE := deploy/compose/engine.sh -f deploy/compose/docker-compose.yml --env-file deploy/compose/.env

up: ## Build the images and start everything with docker or podman compose (deploy/README.md)
	@test -f deploy/compose/.env || { echo "copy deploy/compose/.env.example to deploy/compose/.env and replace its example secrets" >&2; exit 1; }
	@engine="$$(PATH="$$PATH:$(CURDIR)/$(VENV)/bin" deploy/compose/engine.sh --print)" || exit 1; \
	case "$$engine" in \
		docker*) $(COMPOSE) up -d --build --wait ;; \
		*) $(MAKE) --no-print-directory install && PATH="$$PATH:$(CURDIR)/$(VENV)/bin" $(PY) -m costguard.devstack.compose up ;; \
	esac

down: ## Stop the compose stack (its data stays in named volumes)
	PATH="$$PATH:$(CURDIR)/$(VENV)/bin" $(COMPOSE) down

e2e-tools: ## Install podman, runc and debootstrap (Debian's packages) for make e2e, if missing
	@missing=""; for tool in podman runc debootstrap; do \
		command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
		else echo "make e2e needs$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; fi

e2e: install browser e2e-tools ## Build the images; run the compose stack and the k8s manifests with podman; check them end to end
	$(PY) -m costguard.devstack.e2e $(ARGS)

e2e-clean: install ## Remove every image make e2e built (stand-ins and bases included)
	$(PY) -m costguard.devstack.e2e --clean

bench: install ## Run the benchmarks and print their figures
	$(PY) -m bench

clean: ## Remove the dev stack's data, the virtualenv, generated code and the dashboard build
	rm -rf .dev $(VENV) $(PROTO_OUT)/costguard/v1 web/node_modules web/dist
