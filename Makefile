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
E2E_TESTS := 'test/e2e/**/*.test.ts'

.PHONY: help setup system-deps kube-binaries helm-binary prometheus-binary promref-binary generate build typecheck lint deps actionlint check test test-unit test-integration bench bench-controller soak fuzz clean manifests chart-lint test-chart e2e demo demo-down

help: ## List targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-18s %s\n", $$1, $$2 }'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

setup: node_modules/.package-lock.json ## Install Node 24 (if needed) and npm dependencies

system-deps: ## Install etcd, openssl and promtool (prometheus) from Debian when missing (needs root)
	@missing=""; command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

kube-binaries: ## Build (or reuse) kube-apiserver and kube-controller-manager
	@test/tools/go-tools.sh kube >/dev/null

helm-binary: ## Build (or reuse) helm
	@test/tools/go-tools.sh helm >/dev/null

prometheus-binary: ## Build (or reuse) Prometheus (Debian's lacks kubernetes_sd_configs) and the Prometheus Operator
	@test/tools/go-tools.sh prometheus >/dev/null
	@test/tools/go-tools.sh prometheus-operator >/dev/null

promref-binary: ## Build (or reuse) promref: Prometheus's own parser and relabeling, the differential tests' reference
	@test/tools/go-tools.sh promref >/dev/null

generate: setup helm-binary ## Regenerate files derived from the code: the chart's CRD, docs/metrics.md, manifests/install.yaml
	node test/tools/print-crd.ts > charts/coder-metrics/crds/codermetrics.yaml
	node test/tools/metrics-reference.ts > docs/metrics.md
	node test/tools/manifests.ts

manifests: setup helm-binary ## Regenerate only manifests/install.yaml from the chart (helm template)
	node test/tools/manifests.ts

chart-lint: helm-binary ## helm lint --strict of charts/coder-metrics (also part of test-unit)
	"$$(test/tools/go-tools.sh helm)/helm" lint --strict charts/coder-metrics

build: setup ## Compile TypeScript to dist/
	npm run --silent build

# buildah (Debian) and the Dockerfile as is; a stand-in for node:24-bookworm-slim
# (debootstrap + Node from the npm registry) when no registry serves it.
.PHONY: image
image: ## Build the container image coder-metrics:<version> (+ :dev) with buildah, and an OCI archive in .cache/image/ (needs root)
	test/tools/image.sh

typecheck: setup ## tsc --noEmit under strict
	npx tsc --noEmit

lint: setup ## biome lint + format check
	npx biome check .

actionlint: ## Lint .github/workflows with actionlint (built from its Go module)
	"$$(test/tools/go-tools.sh actionlint)/actionlint"

deps: setup ## Dependency rules (.dependency-cruiser.json): no cycles, api/coder/common import no runtime, exporter ⟂ operator
	npx depcruise controller test --config .dependency-cruiser.json

check: typecheck lint deps actionlint ## Static checks

test: check test-unit test-integration ## Unit + integration tests (integration runs a real kube-apiserver + etcd)

test-unit: setup helm-binary system-deps promref-binary ## Pure tests, no I/O beyond loopback (chart tests run helm and promtool, the Prometheus differential promref)
	$(NODE_TEST) $(UNIT_TESTS)

# A real control plane is started once per run by test/cluster/global-setup.ts,
# unless KUBECONFIG is set (then the suites run against that cluster).
test-integration: setup system-deps kube-binaries helm-binary prometheus-binary build ## Integration tests against a real kube-apiserver + etcd
	$(NODE_TEST) --test-concurrency=2 --test-global-setup=test/cluster/global-setup.ts $(INTEGRATION_TESTS)

test-chart: setup helm-binary system-deps ## Only the chart's unit tests: render, values schema, alerts (promtool), manifests drift
	$(NODE_TEST) 'test/unit/chart/*.test.ts'

bench: build ## Exporter benchmarks (figures and ratios, no assertions)
	node --expose-gc test/bench/exporter.bench.ts

bench-controller: build system-deps kube-binaries helm-binary ## Controller at scale: 500 CRs in 500 namespaces (BENCH_CRS=N to change)
	node test/bench/controller.bench.ts --crs $${BENCH_CRS:-500}

soak: build ## Exporter soak: 20 scrapers at 1/s on 5,000 workspaces for SOAK_SECONDS (default 300)
	node test/bench/soak.ts

fuzz: setup promref-binary ## Property tests at 250,000 runs each (2M cases); the Prometheus differential at 100,000 cases of each kind
	FUZZ_RUNS=$${FUZZ_RUNS:-250000} DIFF_RUNS=$${DIFF_RUNS:-100000} $(NODE_TEST) --test-timeout=0 test/unit/exporter/property.test.ts test/unit/exporter/prometheus-differential.test.ts

clean: ## Remove build outputs (keeps the cached Go builds and Node)
	rm -rf dist node_modules

# The image the e2e's kubelet runs coder-metrics from (test/e2e/runtime.ts),
# built from this checkout; the recipes that use it pass its id on (E2E_IMAGE_ID),
# so another checkout's `make image` (one image storage per machine) cannot swap
# it midway. Without root there is no image and coder-metrics runs from the
# sources, with a loud warning; under CI=true that is an error.
E2E_IMAGE = if [ "$${USE_EXISTING_CLUSTER:-}" != true ] && [ "$${E2E_RUNTIME:-}" != process ]; then \
	  if [ "$$(id -u)" = 0 ]; then built="$$(test/tools/image.sh)"; export E2E_IMAGE_ID="$${built\#* }"; \
	  elif [ "$${CI:-}" = true ]; then echo "e2e: CI=true needs the image, and make image needs root" >&2; exit 1; \
	  else echo "e2e: not root, so no image: coder-metrics will run from the sources" >&2; fi; \
	fi

# The whole chain on a local stack (test/e2e/global-setup.ts): control plane +
# kube-controller-manager, the process kubelet running coder-metrics from the
# image (podman), the Prometheus Operator and a real Prometheus, all built from
# pinned Go modules. USE_EXISTING_CLUSTER=true with KUBECONFIG runs it against a
# real cluster instead (see README).
e2e: setup system-deps kube-binaries helm-binary prometheus-binary ## End to end: packaged chart → controller Pod (the image) → coderd + exporter → Prometheus Operator → Prometheus
	@command -v ip >/dev/null || { echo "installing: iproute2 (the process kubelet routes pod IPs)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }
	@$(E2E_IMAGE); set -x; test/tools/in-netns.sh node --test --test-reporter=spec --test-timeout=300000 --test-concurrency=1 --test-global-setup=test/e2e/global-setup.ts $(E2E_TESTS)

demo: setup system-deps kube-binaries helm-binary prometheus-binary ## Start the local stack with the chart, a Coder stand-in and an example CR, in the background (state in .cache/demo/)
	@command -v ip >/dev/null || { echo "installing: iproute2 (the process kubelet routes pod IPs)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }
	@$(E2E_IMAGE); node test/e2e/demo.ts up

demo-down: ## Stop what make demo started
	node test/e2e/demo.ts down
