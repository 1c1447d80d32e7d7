#!/usr/bin/env bash
# usage: image.sh
# Builds the container image from the Dockerfile, unmodified, with buildah, and
# tags it coder-metrics:<package.json version> and coder-metrics:dev in the
# local containers storage (/var/lib/containers, shared with podman); prints
# "coder-metrics:<version> <image id>". It checks that /app holds only
# package.json, the production node_modules and dist/controller/. It also
# writes .cache/image/coder-metrics-<version>.oci.tar (an OCI archive, e.g. for
# `kind load image-archive` or `skopeo copy`). Needs root and Debian: buildah,
# podman and runc (and debootstrap, for the stand-in below) come from apt.
#
# The Dockerfile starts FROM node:24-bookworm-slim. When that image is neither
# in the local storage nor pullable (a machine that reaches only the Debian
# mirror and the npm registry), a stand-in is built under the same name:
# `debootstrap --variant=minbase <suite>` from the machine's own Debian mirror,
# plus the official Node binary from the npm registry's node-linux-<arch>
# package (test/tools/node.sh, the same Node every make target runs) and npm
# from the npm registry, laid out as the official image does (/usr/local/bin).
# Its root filesystem is cached as .cache/image/<key>.rootfs.tar, keyed by the
# suite, Node, npm and architecture, and imported (buildah from scratch +
# commit) whenever the storage lacks it. A real node image, if present or
# pullable, always wins.
#
# Networking: builds run with --network host (npm ci must reach the registry)
# and containers here run with --network none or host; nothing uses podman's
# default bridge network.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cache="$root/.cache/image"
mkdir -p "$cache"
log() { echo "image.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root (buildah with the system storage, debootstrap)"; exit 1; }

# One build at a time: a second caller waits for the first.
exec 9>"$cache/.lock"
flock 9

# --- tools ---------------------------------------------------------------------
apt_install() {
  log "installing from Debian: $*"
  apt-get update -qq
  # --no-install-recommends: no crun (it refuses this machine's cgroup layout),
  # slirp4netns or fuse-overlayfs (rootless only).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$cache/apt.log" 2>&1 ||
    { tail -20 "$cache/apt.log" >&2; exit 1; }
}
missing=()
for tool in buildah podman runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# --- engine configuration ------------------------------------------------------
# A drop-in read by both podman and buildah (containers.conf(5)). Machine facts
# it answers:
# - runc, not crun: crun refuses this machine's hybrid cgroup v1/v2 layout
#   ("cgroups in hybrid mode not supported"); runc is installed with podman, so
#   apt does not pick crun for podman's "crun | runc" dependency;
# - default_ulimits: as root, podman gives a container nofile and nproc of
#   1048576, and runc fails to set them where the engine lacks CAP_SYS_RESOURCE
#   (this machine: hard limits 20000 files, 96365 processes). Ask for the hard
#   limits this shell has; nproc also at most kernel.pid_max, because buildah's
#   chroot isolation has already lowered it to that before it applies these.
conf_dir=/etc/containers/containers.conf.d
conf="$conf_dir/50-coder-metrics.conf"
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
pid_max="$(cat /proc/sys/kernel/pid_max)"
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; } && nproc="$pid_max"
want="# Written by coder-metrics test/tools/image.sh (make image); rewritten when
# this machine's limits change.
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
"
if [ "$(cat "$conf" 2>/dev/null)" != "$(printf '%s' "$want")" ]; then
  mkdir -p "$conf_dir"
  printf '%s' "$want" >"$conf"
  log "wrote $conf"
fi

# --- the base image --------------------------------------------------------------
from="$(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile | sort -u)"
[ "$(echo "$from" | wc -l)" = 1 ] || { log "expected one base image in the Dockerfile, found: $from"; exit 1; }
base="$from"
case "$base" in */*) ;; *) base="docker.io/library/$base" ;; esac
# node:<major>-<debian suite>-slim is the only shape the stand-in reproduces.
if [[ "$from" =~ ^(docker\.io/(library/)?)?node:([0-9]+)-([a-z]+)-slim$ ]]; then
  node_major="${BASH_REMATCH[3]}"
  suite="${BASH_REMATCH[4]}"
else
  node_major="" suite=""
fi
stand_in_label=io.coder-metrics.stand-in

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }
image_label() { buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null; }

stand_in_key() {
  # Node from the npm registry, as every make target gets it (NODE_VERSION is
  # test/tools/node.sh's). FORCE_NODE_INSTALL: the cached copy, not a system Node.
  node_bin="$(FORCE_NODE_INSTALL=1 test/tools/node.sh)"
  node_version="$(basename "$(dirname "$node_bin")")"
  [ "${node_version%%.*}" = "$node_major" ] ||
    { log "test/tools/node.sh installs Node $node_version, the Dockerfile wants Node $node_major"; exit 1; }
  # The npm the official image bundles is not recorded in node-linux-<arch>;
  # pin one of the major that Node line ships.
  npm_version="${IMAGE_NPM_VERSION:-11.21.2}"
  arch="$(dpkg --print-architecture)"
  key="node-$node_version-npm-$npm_version-$suite-$arch"
}

debian_mirror() {
  # The machine's own Debian mirror, as apt resolved it (deb822 or sources.list).
  if [ -n "${DEBOOTSTRAP_MIRROR:-}" ]; then echo "$DEBOOTSTRAP_MIRROR"; return; fi
  local host_suite
  # shellcheck disable=SC1091 # the machine's own file
  host_suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  # shellcheck disable=SC2016 # $(...) are apt's format fields
  apt-get indextargets --format '$(CODENAME) $(LABEL) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
    awk -v s="$host_suite" '$1 == s && $2 == "Debian" { print $3; exit }'
}

build_stand_in() {
  local tar="$cache/$key.rootfs.tar"
  if [ ! -f "$tar" ]; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    local mirror
    mirror="$(debian_mirror)"
    # apt lists only the sources it has fetched the indexes of.
    [ -n "$mirror" ] || { apt-get update -qq && mirror="$(debian_mirror)"; }
    [ -n "$mirror" ] || { log "no Debian mirror in apt's sources (set DEBOOTSTRAP_MIRROR)"; exit 1; }
    # apt's proxy, if it has one, for debootstrap's downloads.
    local http_proxy=""
    eval "$(apt-config shell http_proxy Acquire::http::Proxy)"
    export http_proxy
    local dir="$cache/$key.rootfs"
    rm -rf "$dir"
    log "stand-in base: debootstrap --variant=minbase $suite from $mirror (first run only)"
    local start=$SECONDS
    debootstrap --variant=minbase --arch="$arch" "$suite" "$dir" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
      { tail -20 "$cache/debootstrap.log" >&2; log "debootstrap failed (log: $cache/debootstrap.log)"; exit 1; }
    log "debootstrap took $((SECONDS - start))s"
    # What a -slim image leaves out: package caches, apt lists, docs.
    rm -rf "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
      "$dir"/var/log/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
    find "$dir"/usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
    # Node and npm where the official image has them.
    install -D -m 0755 "$node_bin/node" "$dir/usr/local/bin/node"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "npm@$npm_version" >/dev/null)
    mkdir -p "$dir/usr/local/lib/node_modules/npm"
    tar -xzf "$tmp"/npm-*.tgz -C "$dir/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
    rm -rf "$tmp"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
    chroot "$dir" /usr/local/bin/node --version >/dev/null
    tar --numeric-owner -C "$dir" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  log "importing the stand-in base from $(basename "$tar") as $base"
  local ctr mnt
  ctr="$(buildah from --quiet scratch)"
  mnt="$(buildah mount "$ctr")"
  tar --numeric-owner -xf "$tar" -C "$mnt"
  buildah umount "$ctr" >/dev/null
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$node_version" \
    --cmd '["node"]' \
    --label "$stand_in_label=$key" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$base" >/dev/null
}

if have_image "$base" && [ -z "$(image_label "$base" "$stand_in_label")" ]; then
  log "base $base: the real one, from the local storage"
else
  [ -n "$suite" ] || { log "cannot build a stand-in for $from"; exit 1; }
  stand_in_key
  if have_image "$base" && [ "$(image_label "$base" "$stand_in_label")" = "$key" ]; then
    log "base $base: stand-in $key, from the local storage"
  elif timeout 600 buildah pull --quiet "$base" >/dev/null 2>"$cache/pull.log"; then
    log "base $base: pulled"
  else
    log "base $base: not pullable ($(tail -1 "$cache/pull.log")); using a stand-in"
    build_stand_in
  fi
fi

# --- npm inside the build ---------------------------------------------------------
# `npm ci` in the Dockerfile must reach the same registry, through the same
# TLS-inspecting CA if the machine has one, as npm here. The Dockerfile stays
# as it is, so the settings go in as a global npmrc bind-mounted for the RUN
# steps only (/usr/local/etc/npmrc: npm's global config for a Node in
# /usr/local/bin, as in the official image); bind mounts never land in a layer.
build_dir="$cache/build"
mkdir -p "$build_dir"
npm_get() { local v; v="$(npm config get "$1" 2>/dev/null)"; [ "$v" = null ] || [ "$v" = undefined ] || echo "$v"; }
{
  echo "registry=$(npm_get registry)"
  for k in proxy https-proxy noproxy strict-ssl; do
    v="$(npm_get "$k")"
    [ -z "$v" ] || echo "$k=$v"
  done
} >"$build_dir/npmrc"
mounts=(-v "$build_dir/npmrc:/usr/local/etc/npmrc:ro")
# npm's cafile replaces the default roots; NODE_EXTRA_CA_CERTS adds to Node's.
# Either way the build gets one bundle, as its npm's cafile.
cafile="$(npm_get cafile)"
if [ -n "$cafile" ]; then
  cat "$cafile" >"$build_dir/ca.pem"
elif [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then
  { node -p 'require("node:tls").rootCertificates.join("\n")'; cat "$NODE_EXTRA_CA_CERTS"; } >"$build_dir/ca.pem"
else
  rm -f "$build_dir/ca.pem"
fi
if [ -f "$build_dir/ca.pem" ]; then
  echo "cafile=/run/coder-metrics-build/ca.pem" >>"$build_dir/npmrc"
  mounts+=(-v "$build_dir/ca.pem:/run/coder-metrics-build/ca.pem:ro")
fi

# --- build -----------------------------------------------------------------------
version="$(node -p 'require("./package.json").version')"
image="coder-metrics:$version"
log "building $image (and coder-metrics:dev) from the Dockerfile"
start=$SECONDS
# --layers: a warm build reuses every unchanged step (npm ci included).
# --isolation chroot: RUN steps without an OCI runtime or a network namespace.
buildah bud --isolation chroot --network host --pull-never --layers \
  "${mounts[@]}" -f Dockerfile -t "$image" -t coder-metrics:dev . >"$cache/build.log" 2>&1 ||
  { tail -30 "$cache/build.log" >&2; log "buildah bud failed (log: $cache/build.log)"; exit 1; }
log "built $image in $((SECONDS - start))s"

# The image must start, read-only and as the uid the chart runs it with.
podman run --rm --network none --read-only --user 65532:65532 "$image" version >/dev/null

# What it ships: /app holds package.json, production node_modules and dist/controller/
# (tsc output); no build tool or fixture from test/, no dev-only package.
# (test/unit/release/runtime-package.test.ts checks the build the same way.)
listing="$(podman run --rm --network none --read-only --user 65532:65532 --entrypoint node "$image" -e '
const fs = require("node:fs");
for (const f of fs.readdirSync("/app")) console.log(`app ${f}`);
for (const f of fs.readdirSync("/app/dist", { recursive: true })) console.log(`dist ${f}`);
for (const f of fs.readdirSync("/app/node_modules")) {
  if (!f.startsWith("@")) console.log(`module ${f}`);
  else for (const g of fs.readdirSync(`/app/node_modules/${f}`)) console.log(`module ${f}/${g}`);
}
')"
# Top-level packages of the production tree, from package-lock.json (dev-only ones are "dev": true).
prod="$(node -e '
const lock = require("./package-lock.json");
for (const [path, p] of Object.entries(lock.packages))
  if (/^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) && !p.dev) console.log(path.slice("node_modules/".length));
' | tr '\n' ' ')"
bad="$(echo "$listing" | awk -v prod=" $prod " '
  $1 == "app" && $2 !~ /^(package\.json|node_modules|dist)$/ { print; next }
  $1 == "dist" && ($2 !~ /^controller(\/|$)/ || $2 ~ /print-crd|metrics-reference|manifests|fixture|stand-?in|\.test\.|\.bench\./) { print; next }
  $1 == "module" && $2 !~ /^\./ && !index(prod, " " $2 " ") { print }')"
[ -z "$bad" ] || { log "the image ships what it should not:"; echo "$bad" >&2; exit 1; }
log "$image: /app holds package.json, node_modules ($(echo "$listing" | grep -c '^module ') packages, all of the production tree) and dist/controller ($(echo "$listing" | grep -c '^dist .*\.js$') .js files)"

id="$(buildah inspect --type image --format '{{.FromImageID}}' "$image")"
archive="$cache/coder-metrics-$version.oci.tar"
if [ "$(cat "$archive.id" 2>/dev/null)" != "$id" ]; then
  rm -f "$archive"
  buildah push --quiet "$image" "oci-archive:$archive:$image" >/dev/null
  echo "$id" >"$archive.id"
fi
size="$(podman image inspect --format '{{.Size}}' "$image")"
log "$image: id ${id:0:12}, $((size / 1000000)) MB; OCI archive $archive"
# The name and the id of this build: the id stays this build's while the name may
# be retagged by a later build (make e2e runs the id, see the Makefile).
echo "$image $id"
