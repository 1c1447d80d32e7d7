# coder-metrics — every target runs on Node >= 22 (Node 24 LTS installed into
# .cache/node by test/tools/node.sh when the system one is older).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

NODE_BIN := $(shell test/tools/node.sh)
ifeq ($(NODE_BIN),)
$(error could not find or install Node >= 22: see test/tools/node.sh)
endif
export PATH := $(NODE_BIN):$(PATH)

NODE_TEST := node --test --test-reporter=spec --test-timeout=120000
UNIT_TESTS := 'test/unit/**/*.test.ts'
INTEGRATION_TESTS := 'test/integration/**/*.test.ts'

.PHONY: help setup system-deps kube-binaries helm-binary build typecheck lint check test test-unit test-integration bench clean

help: ## List targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-18s %s\n", $$1, $$2 }'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

setup: node_modules/.package-lock.json ## Install Node 24 (if needed) and npm dependencies

system-deps: ## Install etcd and openssl from Debian when missing (needs root)
	@missing=""; command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

kube-binaries: ## Build (or reuse) kube-apiserver and kube-controller-manager
	@test/tools/go-tools.sh kube >/dev/null

helm-binary: ## Build (or reuse) helm
	@test/tools/go-tools.sh helm >/dev/null

build: setup ## Compile TypeScript to dist/
	npm run --silent build

typecheck: setup ## tsc --noEmit under strict
	npx tsc --noEmit

lint: setup ## biome lint + format check
	npx biome check .

check: typecheck lint ## Static checks

test: check test-unit test-integration ## Unit + integration tests (integration runs a real kube-apiserver + etcd)

test-unit: setup ## Pure tests, no I/O beyond loopback
	$(NODE_TEST) $(UNIT_TESTS)

# A real control plane is started once per run by test/cluster/global-setup.ts,
# unless KUBECONFIG is set (then the suites run against that cluster).
test-integration: setup system-deps kube-binaries build ## Integration tests against a real kube-apiserver + etcd
	$(NODE_TEST) --test-concurrency=2 --test-global-setup=test/cluster/global-setup.ts $(INTEGRATION_TESTS)

bench: setup ## Exporter benchmarks (figures and ratios, no assertions)
	node --expose-gc test/bench/exporter.bench.ts

clean: ## Remove build outputs (keeps the cached Go builds and Node)
	rm -rf dist node_modules
