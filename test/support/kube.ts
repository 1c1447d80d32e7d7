// What an integration test needs from the cluster: typed clients from the
// run's KUBECONFIG and a fresh namespace that is deleted afterwards.
import { randomBytes } from "node:crypto";
import type { TestContext } from "node:test";
import * as k8s from "@kubernetes/client-node";

export interface TestClients {
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  apiextensions: k8s.ApiextensionsV1Api;
  objects: k8s.KubernetesObjectApi;
}

/** Clients for the run's cluster (KUBECONFIG), or for the kubeconfig file given. */
export function testClients(kubeconfigPath?: string): TestClients {
  const config = new k8s.KubeConfig();
  if (kubeconfigPath) config.loadFromFile(kubeconfigPath);
  else config.loadFromDefault();
  if (config.getCurrentCluster() === null) {
    throw new Error(
      "no cluster: run through `make test-integration`, or set USE_EXISTING_CLUSTER=true with KUBECONFIG",
    );
  }
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    apps: config.makeApiClient(k8s.AppsV1Api),
    apiextensions: config.makeApiClient(k8s.ApiextensionsV1Api),
    objects: k8s.KubernetesObjectApi.makeApiClient(config),
  };
}

/** Creates a namespace for this test (file or case) and deletes it when the test ends. */
export async function freshNamespace(
  t: TestContext,
  clients: TestClients,
  prefix = "cm-test",
): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString("hex")}`;
  await clients.core.createNamespace({
    body: { metadata: { name, labels: { "coder-metrics.test/owner": "integration" } } },
  });
  t.after(async () => {
    await clients.core.deleteNamespace({ name }).catch(() => undefined);
  });
  return name;
}

/** Polls until `check` returns a value other than undefined, or fails with `what`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  { timeoutMs = 30_000, intervalMs = 200 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`,
  );
}
