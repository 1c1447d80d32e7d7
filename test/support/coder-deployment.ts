// A Deployment shaped like the one Coder's Helm chart (coder/coder helm/coder,
// helm/libcoder) renders, for unit tests (the pure builder) and integration and
// e2e tests (created in the test cluster, by default under the "helm" field
// manager, as a Helm release would). What the chart does that matters here:
//   - the `coder` container always gets CODER_HTTP_ADDRESS=0.0.0.0:8080 and
//     CODER_PROMETHEUS_ADDRESS=0.0.0.0:2112 (current charts leave the latter
//     out when coder.env names it; older ones set it regardless), then coder.env;
//   - container port `http` 8080, and `prometheus-http` 2112 only when
//     coder.env has CODER_PROMETHEUS_ENABLE with the string value "true";
//   - readiness and liveness probes GET /healthz on the named port `http`;
//   - a container securityContext running as uid/gid 1000, non-root;
//   - labels: the selector is app.kubernetes.io/name and instance only.
// Left out: the ServiceAccount (the test clusters have none), TLS and the
// provisioner PSK.
import * as k8s from "@kubernetes/client-node";
import type { V1Container, V1Deployment, V1EnvVar } from "@kubernetes/client-node";
import type { TestClients } from "./kube.ts";

export const coderLabels = {
  "app.kubernetes.io/name": "coder",
  "app.kubernetes.io/instance": "coder",
};

/** The Coder release the chart-shaped Deployment runs. */
export const coderImage = "ghcr.io/coder/coder:v2.35.2";

/** The address Coder's chart gives CODER_PROMETHEUS_ADDRESS. */
export const chartPrometheusAddress = "0.0.0.0:2112";

export interface CoderDeploymentOptions {
  name?: string;
  namespace?: string;
  /** The selector's labels, also on the Deployment and its pods (default: Coder's chart's). */
  labels?: Record<string, string>;
  /** Labels on the Deployment and its pods beyond the selector (default: the rest of the chart's). */
  extraLabels?: Record<string, string>;
  /** The chart's coder.env: on the coder container after the chart's own env. */
  env?: V1EnvVar[];
  replicas?: number;
  /**
   * false: a bare Deployment as a hand-written manifest would have it (no
   * chart env, ports beyond `http`, probes or securityContext), for tests of
   * what the controller does when nothing is set.
   */
  helmChart?: boolean;
}

/** The env Coder's chart puts on the coder container, followed by coder.env. */
function chartEnv(userEnv: readonly V1EnvVar[], namespace: string): V1EnvVar[] {
  const named = (name: string) => userEnv.some((e) => e.name === name);
  return [
    { name: "CODER_HTTP_ADDRESS", value: "0.0.0.0:8080" },
    ...(named("CODER_PROMETHEUS_ADDRESS")
      ? []
      : [{ name: "CODER_PROMETHEUS_ADDRESS", value: chartPrometheusAddress }]),
    ...(named("CODER_PPROF_ADDRESS")
      ? []
      : [{ name: "CODER_PPROF_ADDRESS", value: "0.0.0.0:6060" }]),
    ...(named("CODER_ACCESS_URL")
      ? []
      : [{ name: "CODER_ACCESS_URL", value: `http://coder.${namespace}.svc.cluster.local` }]),
    { name: "KUBE_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    { name: "CODER_DERP_SERVER_RELAY_URL", value: "http://$(KUBE_POD_IP):8080" },
    ...userEnv,
  ];
}

export function coderDeployment(options: CoderDeploymentOptions = {}): V1Deployment {
  const helmChart = options.helmChart ?? true;
  const namespace = options.namespace ?? "coder";
  const selector = options.labels ?? coderLabels;
  const labels = {
    ...selector,
    ...(options.extraLabels ??
      (helmChart
        ? {
            "helm.sh/chart": "coder-2.35.2",
            "app.kubernetes.io/part-of": "coder",
            "app.kubernetes.io/version": "2.35.2",
            "app.kubernetes.io/managed-by": "Helm",
          }
        : { "app.kubernetes.io/part-of": "coder" })),
  };
  const userEnv = options.env ?? [];
  const prometheusPort = userEnv.some(
    (e) => e.name === "CODER_PROMETHEUS_ENABLE" && e.value === "true",
  );
  const probe = { httpGet: { path: "/healthz", port: "http", scheme: "HTTP" } };
  const container: V1Container = helmChart
    ? {
        name: "coder",
        image: coderImage,
        command: ["/opt/coder"],
        args: ["server"],
        env: chartEnv(userEnv, namespace),
        ports: [
          { name: "http", containerPort: 8080, protocol: "TCP" },
          ...(prometheusPort
            ? [{ name: "prometheus-http", containerPort: 2112, protocol: "TCP" }]
            : []),
        ],
        readinessProbe: probe,
        livenessProbe: probe,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 1000,
          runAsGroup: 1000,
          seccompProfile: { type: "RuntimeDefault" },
          allowPrivilegeEscalation: false,
        },
      }
    : {
        name: "coder",
        image: coderImage,
        env: [{ name: "CODER_HTTP_ADDRESS", value: "0.0.0.0:8080" }, ...userEnv],
        ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
      };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: options.name ?? "coder", namespace, labels },
    spec: {
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
      selector: { matchLabels: selector },
      template: {
        metadata: { labels },
        spec: {
          ...(helmChart ? { terminationGracePeriodSeconds: 60 } : {}),
          containers: [container],
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
