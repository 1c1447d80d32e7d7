// A Deployment shaped like the one Coder's Helm chart renders, for unit tests
// (the pure builder) and integration tests (created in the test cluster, by
// default under the "helm" field manager, as a Helm release would).
import * as k8s from "@kubernetes/client-node";
import type { V1Container, V1Deployment, V1EnvVar } from "@kubernetes/client-node";
import type { TestClients } from "./kube.ts";

export const coderLabels = {
  "app.kubernetes.io/name": "coder",
  "app.kubernetes.io/instance": "coder",
};

export interface CoderDeploymentOptions {
  name?: string;
  namespace?: string;
  /** The selector's labels, also on the Deployment and its pods (default: Coder's chart's). */
  labels?: Record<string, string>;
  /** Labels on the Deployment and its pods beyond the selector (default: part-of=coder, as the chart sets). */
  extraLabels?: Record<string, string>;
  /** Extra env on the coder container, after the chart's CODER_HTTP_ADDRESS. */
  env?: V1EnvVar[];
  replicas?: number;
}

export function coderDeployment(options: CoderDeploymentOptions = {}): V1Deployment {
  const selector = options.labels ?? coderLabels;
  const labels = {
    ...selector,
    ...(options.extraLabels ?? { "app.kubernetes.io/part-of": "coder" }),
  };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: options.name ?? "coder", namespace: options.namespace ?? "coder", labels },
    spec: {
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      selector: { matchLabels: selector },
      template: {
        metadata: { labels },
        spec: {
          containers: [
            {
              name: "coder",
              image: "ghcr.io/coder/coder:v2.20.0",
              env: [{ name: "CODER_HTTP_ADDRESS", value: "0.0.0.0:8080" }, ...(options.env ?? [])],
              ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
            },
          ],
        },
      },
    },
  };
}

export async function createCoderDeployment(
  clients: TestClients,
  namespace: string,
  options: CoderDeploymentOptions & { fieldManager?: string } = {},
): Promise<V1Deployment> {
  return clients.apps.createNamespacedDeployment({
    namespace,
    fieldManager: options.fieldManager ?? "helm",
    body: coderDeployment({ ...options, namespace }),
  });
}

/**
 * Another writer changes one container of the Deployment (a strategic merge
 * patch under its own field manager): `helm upgrade` of Coder, or `kubectl edit`.
 */
export async function patchContainer(
  clients: TestClients,
  namespace: string,
  container: Partial<V1Container> & { name: string },
  options: { deployment?: string; fieldManager?: string } = {},
  dryRun?: "All",
): Promise<void> {
  await clients.apps.patchNamespacedDeployment(
    {
      name: options.deployment ?? "coder",
      namespace,
      fieldManager: options.fieldManager ?? "helm",
      body: { spec: { template: { spec: { containers: [container] } } } },
      ...(dryRun ? { dryRun } : {}),
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch),
  );
}
