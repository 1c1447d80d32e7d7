#!/usr/bin/env bash
# usage: in-netns.sh COMMAND [ARGS...]
# Runs COMMAND in a network namespace of its own (only `lo`, up), deleted
# afterwards. The e2e suite gives Pods addresses from 198.18.0.0/15 made local
# with a route; inside a namespace made for the run, that route and all the
# traffic to those addresses stay with the test and never touch the host's
# network. Needs root (CAP_NET_ADMIN). It enters only the network namespace
# (nsenter --net), not `ip netns exec`'s fresh /sys: podman's runc needs the
# machine's cgroup mounts under /sys/fs/cgroup to start the image's containers,
# which join this namespace with --network host. Against an existing cluster
# (USE_EXISTING_CLUSTER=true) the command runs as is: it must reach that cluster.
set -euo pipefail
if [ "${USE_EXISTING_CLUSTER:-}" = true ] || [ -n "${CODER_METRICS_NETNS:-}" ]; then
  exec "$@"
fi
ns="cm-e2e-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
set +e
CODER_METRICS_NETNS="$ns" nsenter --net="/run/netns/$ns" "$@"
rc=$?
exit $rc
