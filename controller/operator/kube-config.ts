// client-node builds a new undici Agent for every request it authenticates
// (KubeConfig.createDispatcher), so each API call pays a TLS handshake and the
// old agents' idle sockets pile up. One Agent per cluster+user, reused by
// every request and watch, fixes both; credentials in headers (tokens, exec
// plugins) are still applied per request.
import type * as k8s from "@kubernetes/client-node";
import type { Dispatcher } from "undici";

type CreateDispatcher = (
  cluster: k8s.Cluster | null,
  agentOptions: object,
) => Dispatcher | undefined;

const reused = new WeakSet<k8s.KubeConfig>();

export function reuseConnections(config: k8s.KubeConfig): k8s.KubeConfig {
  if (reused.has(config)) return config;
  reused.add(config);
  // createDispatcher is private in client-node's typings; this is the one place we reach in.
  const target = config as unknown as { createDispatcher: CreateDispatcher };
  const create = target.createDispatcher.bind(config);
  const cache = new Map<string, Dispatcher | undefined>();
  target.createDispatcher = (cluster, agentOptions) => {
    // Keyed by who talks to which server; client certificates read from files are
    // taken once per process (restart the controller after rotating them).
    const key = JSON.stringify([cluster?.name, cluster?.server, config.getCurrentUser()?.name]);
    if (!cache.has(key)) cache.set(key, create(cluster, agentOptions));
    return cache.get(key);
  };
  return config;
}
