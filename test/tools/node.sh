#!/usr/bin/env bash
# Prints the directory holding a Node.js >= 22 binary, installing Node 24 LTS
# from the npm registry (the node-linux-<arch> package ships the official
# binary) into .cache/node/ when the system one is older. Cached by version.
set -euo pipefail
NODE_VERSION="${NODE_VERSION:-24.21.0}"
root="$(cd "$(dirname "$0")/../.." && pwd)"

if command -v node >/dev/null 2>&1; then
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -ge 22 ] && [ -z "${FORCE_NODE_INSTALL:-}" ]; then
    dirname "$(command -v node)"
    exit 0
  fi
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

dest="$root/.cache/node/$NODE_VERSION"
if [ ! -x "$dest/bin/node" ]; then
  echo "node.sh: installing Node $NODE_VERSION (node-linux-$arch) into $dest" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null)
  mkdir -p "$dest"
  tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$dest" --strip-components=1 package/bin package/LICENSE
fi
"$dest/bin/node" --version >/dev/null
echo "$dest/bin"
