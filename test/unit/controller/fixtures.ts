// Small builders for the controller's unit tests.
import type { V1Deployment, V1EnvVar } from "@kubernetes/client-node";
import { resolveSpec } from "../../../controller/api/defaults.ts";
import type { CoderMetrics, CoderMetricsSpec } from "../../../controller/api/v1alpha1.ts";

export function coderMetrics(
  spec: unknown = {},
  name = "coder",
  namespace = "coder",
): CoderMetrics & { spec: CoderMetricsSpec } {
  return {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name, namespace, uid: "uid-1", generation: 1 },
    spec: resolveSpec(spec),
  };
}

/** A Deployment shaped like the one Coder's Helm chart renders. */
export function coderDeployment(
  env: V1EnvVar[] = [],
  name = "coder",
  namespace = "coder",
): V1Deployment {
  const labels = { "app.kubernetes.io/name": "coder", "app.kubernetes.io/instance": "coder" };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace, labels },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [
            {
              name: "coder",
              image: "ghcr.io/coder/coder:v2.20.0",
              env: [{ name: "CODER_HTTP_ADDRESS", value: "0.0.0.0:8080" }, ...env],
            },
          ],
        },
      },
    },
  };
}
