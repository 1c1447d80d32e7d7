#!/usr/bin/env bash
# usage: go-module-dir.sh <tool-module-folder> <module path>
# Prints the folder of a Go module pinned by test/tools/<folder>/go.mod,
# downloading it into the module cache first (e.g. for the CRD YAML the
# Prometheus Operator's module ships).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/test/tools/${1:?tool module folder}"
go mod download "${2:?module path}"
go list -m -f '{{.Dir}}' "$2"
