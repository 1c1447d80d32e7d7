// A Deployment shaped like the one Coder's Helm chart renders, for unit tests
// (the pure builder) and integration tests (created in the test cluster, by
// default under the "helm" field manager, as a Helm release would).
import type { V1Deployment, V1EnvVar } from "@kubernetes/client-node";
import type { TestClients } from "./kube.ts";

export const coderLabels = {
  "app.kubernetes.io/name": "coder",
  "app.kubernetes.io/instance": "coder",
};

export interface CoderDeploymentOptions {
  name?: string;
  namespace?: string;
  /** Deployment, selector and pod labels (default: Coder's chart's). */
  labels?: Record<string, string>;
  /** Extra env on the coder container, after the chart's CODER_HTTP_ADDRESS. */
  env?: V1EnvVar[];
  replicas?: number;
}

export function coderDeployment(options: CoderDeploymentOptions = {}): V1Deployment {
  const labels = options.labels ?? coderLabels;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: options.name ?? "coder", namespace: options.namespace ?? "coder", labels },
    spec: {
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      selector: { matchLabels: labels },
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
