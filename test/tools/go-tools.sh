#!/usr/bin/env bash
# usage: go-tools.sh <kube|helm|...>
# Builds every `tool` listed in test/tools/<name>/go.mod with the Go toolchain
# into .cache/bin/<name>-<digest of go.mod+go.sum+*.go>/ and prints that folder.
# A module without `tool` lines is a program of our own (e.g. promref): its
# main package is built as .cache/bin/<name>-<digest>/<name>.
# The build is skipped when the folder exists, so the cache survives until the
# pinned versions or our sources change. An optional test/tools/<name>/ldflags
# file stamps versions the way the projects' own release builds do (-X flags). For kube, KUBEBUILDER_ASSETS (a folder that already
# holds kube-apiserver and kube-controller-manager) wins when set.
set -euo pipefail
name="${1:?usage: go-tools.sh <tool-module-folder>}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mod="$root/test/tools/$name"
[ -f "$mod/go.mod" ] || { echo "go-tools.sh: no module at $mod" >&2; exit 1; }

if [ "$name" = kube ] && [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

extra_ldflags=""
[ -f "$mod/ldflags" ] && extra_ldflags="$(tr '\n' ' ' < "$mod/ldflags")"
# Our own sources count too, so editing main.go rebuilds; tool-only modules
# have none, which keeps their digests as they were.
shopt -s nullglob
srcs=("$mod"/*.go)
digest="$( (cat "$mod/go.mod" "$mod/go.sum" "${srcs[@]}"; echo "$extra_ldflags") | sha256sum | cut -c1-12)"
dest="$root/.cache/bin/$name-$digest"
exit_if_cached() {
  if [ -f "$dest/.complete" ]; then
    echo "$dest"
    exit 0
  fi
}
exit_if_cached
mkdir -p "$(dirname "$dest")"
# One build at a time per tool: a second caller waits, then finds it cached.
exec 9>"$dest.lock"
flock 9
exit_if_cached
command -v go >/dev/null || { echo "go-tools.sh: the Go toolchain is needed to build $name" >&2; exit 1; }
tools="$(awk '/^tool \(/ { inblock = 1; next } inblock && /^\)/ { inblock = 0 } inblock { print $1 } /^tool [^(]/ { print $2 }' "$mod/go.mod")"
out="$dest.tmp/"
# No `tool` lines: build the module's own main package, named after the folder.
[ -n "$tools" ] || { tools="."; out="$dest.tmp/$name"; }
echo "go-tools.sh: building $name ($(echo $tools | tr '\n' ' ')) — first run only, several minutes on a cold machine" >&2
start=$SECONDS
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
# shellcheck disable=SC2086 # one argument per tool package
(cd "$mod" && go build -ldflags="-s -w $extra_ldflags" -o "$out" $tools)
touch "$dest.tmp/.complete"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "go-tools.sh: built $name in $((SECONDS - start))s" >&2
echo "$dest"
