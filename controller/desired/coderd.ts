// What coder-metrics applies to a Coder Deployment: the CODER_PROMETHEUS_*
// environment of the coderd container and, when enabled, the exporter sidecar
// with its config volume. Only these fields are sent (server-side apply), so
// everything Coder's Helm chart or the user set stays theirs.
//
// Policy for settings the user already has (spec.coder.existingSettings):
//   Respect (default): a CODER_PROMETHEUS_* variable set by someone else is left
//     alone and its value used (its address is what the Service targets); if it
//     disables Prometheus, nothing is injected and the status says so.
//   Override: our values replace theirs (server-side apply with force).
import type { V1Container, V1Deployment, V1EnvVar, V1Volume } from "@kubernetes/client-node";
import type { CoderMetrics, CoderMetricsSpec } from "../api/v1alpha1.ts";
import { type CoderAddress, parseCoderAddress, upstreamUrl } from "./coder-address.ts";
import { exporterNodeOptions } from "./exporter-heap.ts";
import { loopbackAddress, type PiiExposure, piiConfigured, piiExposure } from "./pii-boundary.ts";
import { scrapeAnnotations } from "./service.ts";
import {
  exporterConfigDir,
  exporterConfigKey,
  exporterConfigVolume,
  exporterContainerName,
  exporterPortName,
  instanceAnnotation,
  instanceKey,
  instanceLabel,
} from "./names.ts";

export const hashKeyVolume = "coder-metrics-hash-key";
const hashKeyDir = "/etc/coder-metrics-hash-key";
/**
 * An empty, read-only volume over the ServiceAccount token path in the sidecar:
 * the exporter never calls the API, so even compromised it cannot act as
 * Coder's ServiceAccount. (The ServiceAccount admission plugin mounts no token
 * into a container that already mounts something at this path.)
 */
export const noTokenVolume = "coder-metrics-no-token";
export const serviceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface CoderdInput {
  cr: Pick<CoderMetrics, "metadata">;
  spec: CoderMetricsSpec;
  deployment: V1Deployment;
  /** Env names in the coderd container that our field manager owns already. */
  ownedEnv: ReadonlySet<string>;
  exporterImage: string;
  exporterConfigMap: string;
}

export type CoderdPlan =
  | {
      ok: true;
      /** The partial Deployment to server-side apply. */
      apply: V1Deployment;
      /** Where coderd serves metrics (what the Service's prom-http port targets). */
      coderAddress: CoderAddress;
      /** User settings that were respected, for the status message. */
      respected: string[];
      /** With spec.exporter.config.pii: how coderd's raw metrics are still reachable beyond the Pod, if they are. */
      piiExposure: PiiExposure | undefined;
    }
  | {
      ok: false;
      reason: "ContainerNotFound" | "PrometheusDisabledByUser" | "InvalidAddress";
      message: string;
    };

const truthy = new Set(["1", "t", "T", "true", "TRUE", "True"]); // Go's strconv.ParseBool, as Coder reads it

/** CODER_PROMETHEUS_ADDRESS as we set it. With pii, raw metrics must not leave the Pod: loopback, which the sidecar shares. */
export function coderdListenAddress(spec: CoderMetricsSpec): string {
  return piiConfigured(spec) ? loopbackAddress(spec.coder.address) : spec.coder.address;
}

export function coderdEnv(spec: CoderMetricsSpec): V1EnvVar[] {
  const env: V1EnvVar[] = [
    { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
    { name: "CODER_PROMETHEUS_ADDRESS", value: coderdListenAddress(spec) },
  ];
  if (spec.coder.collectAgentStats !== undefined) {
    env.push({
      name: "CODER_PROMETHEUS_COLLECT_AGENT_STATS",
      value: String(spec.coder.collectAgentStats),
    });
  }
  if (spec.coder.collectDBMetrics !== undefined) {
    env.push({
      name: "CODER_PROMETHEUS_COLLECT_DB_METRICS",
      value: String(spec.coder.collectDBMetrics),
    });
  }
  if (spec.coder.aggregateAgentStatsBy !== undefined) {
    env.push({
      name: "CODER_PROMETHEUS_AGGREGATE_AGENT_STATS_BY",
      value: spec.coder.aggregateAgentStatsBy.join(","),
    });
  }
  return env;
}

export function exporterContainer(
  spec: CoderMetricsSpec,
  image: string,
  coder: CoderAddress,
): V1Container {
  const port = spec.exporter.port;
  const hashKey = spec.exporter.config.pii?.hashKeySecretRef;
  return {
    name: exporterContainerName,
    image: spec.exporter.image ?? image,
    ...(spec.exporter.imagePullPolicy ? { imagePullPolicy: spec.exporter.imagePullPolicy } : {}),
    args: [
      "exporter",
      `--upstream=${upstreamUrl(coder)}`,
      `--listen=0.0.0.0:${port}`,
      `--config=${exporterConfigDir}/${exporterConfigKey}`,
      ...(hashKey ? [`--hash-key-file=${hashKeyDir}/key`] : []),
    ],
    env: [
      {
        name: "NODE_OPTIONS",
        value: exporterNodeOptions(spec.exporter.resources?.limits?.memory),
      },
    ],
    ports: [{ name: exporterPortName, containerPort: port, protocol: "TCP" }],
    resources: spec.exporter.resources as V1Container["resources"],
    readinessProbe: { httpGet: { path: "/readyz", port: exporterPortName }, periodSeconds: 10 },
    livenessProbe: { httpGet: { path: "/healthz", port: exporterPortName }, periodSeconds: 20 },
    // Passes Pod Security Standards "restricted" on its own.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
    volumeMounts: [
      { name: exporterConfigVolume, mountPath: exporterConfigDir, readOnly: true },
      ...(hashKey ? [{ name: hashKeyVolume, mountPath: hashKeyDir, readOnly: true }] : []),
      { name: noTokenVolume, mountPath: serviceAccountTokenPath, readOnly: true },
    ],
  };
}

export function exporterVolumes(spec: CoderMetricsSpec, configMap: string): V1Volume[] {
  const hashKey = spec.exporter.config.pii?.hashKeySecretRef;
  return [
    // optional: coderd's Pods must start even while the ConfigMap is missing (not yet
    // applied, deleted by hand); the exporter uses the identity config until it appears.
    { name: exporterConfigVolume, configMap: { name: configMap, optional: true } },
    ...(hashKey
      ? [
          {
            name: hashKeyVolume,
            secret: { secretName: hashKey.name, items: [{ key: hashKey.key, path: "key" }] },
          },
        ]
      : []),
    { name: noTokenVolume, emptyDir: { medium: "Memory", sizeLimit: "1Ki" } },
  ];
}

export function planCoderd(input: CoderdInput): CoderdPlan {
  const { spec, deployment } = input;
  const containers = deployment.spec?.template.spec?.containers ?? [];
  const coderd = containers.find((c) => c.name === spec.coderContainer);
  if (coderd === undefined) {
    return {
      ok: false,
      reason: "ContainerNotFound",
      message: `Deployment ${deployment.metadata?.name} has no container "${spec.coderContainer}" (containers: ${containers.map((c) => c.name).join(", ")}); set spec.coderContainer`,
    };
  }

  const liveEnv = new Map((coderd.env ?? []).map((e) => [e.name, e]));
  const env: V1EnvVar[] = [];
  const respected: string[] = [];
  let address = coderdListenAddress(spec);
  let userAddress: string | undefined;
  let enabled = true;
  for (const wanted of coderdEnv(spec)) {
    const theirs = liveEnv.get(wanted.name);
    const respect =
      theirs !== undefined &&
      !input.ownedEnv.has(wanted.name) &&
      spec.coder.existingSettings === "Respect";
    if (!respect) {
      env.push(wanted);
      continue;
    }
    respected.push(wanted.name);
    if (wanted.name === "CODER_PROMETHEUS_ADDRESS") userAddress = theirs.value;
    if (theirs.value === undefined) continue; // valueFrom: unknown here, assume ours
    if (wanted.name === "CODER_PROMETHEUS_ADDRESS") address = theirs.value;
    if (wanted.name === "CODER_PROMETHEUS_ENABLE") enabled = truthy.has(theirs.value);
  }
  if (!enabled) {
    return {
      ok: false,
      reason: "PrometheusDisabledByUser",
      message: `the coderd container sets CODER_PROMETHEUS_ENABLE=${liveEnv.get("CODER_PROMETHEUS_ENABLE")?.value}; remove it or set spec.coder.existingSettings: Override`,
    };
  }
  const coderAddress = parseCoderAddress(address);
  if (coderAddress === undefined) {
    return {
      ok: false,
      reason: "InvalidAddress",
      message: `CODER_PROMETHEUS_ADDRESS "${address}" is not host:port`,
    };
  }

  const containersToApply: V1Container[] = [{ name: spec.coderContainer, env } as V1Container];
  if (spec.exporter.enabled)
    containersToApply.push(exporterContainer(spec, input.exporterImage, coderAddress));
  const apply: V1Deployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: deployment.metadata?.name ?? "",
      namespace: deployment.metadata?.namespace ?? "",
      annotations: { [instanceAnnotation]: instanceKey(input.cr) },
    },
    spec: {
      template: {
        metadata: {
          // Marks the pods this CoderMetrics configured: the Service selects only them, so a
          // pod still waiting for the rollout never shows up as a down exporter target.
          labels: { [instanceLabel]: input.cr.metadata.name },
          ...(spec.prometheusAnnotations.pods
            ? { annotations: scrapeAnnotations(spec, coderAddress.port) }
            : {}),
        },
        spec: {
          containers: containersToApply,
          ...(spec.exporter.enabled
            ? { volumes: exporterVolumes(spec, input.exporterConfigMap) }
            : {}),
        },
      },
      // A partial object for server-side apply: selector and the rest stay the chart's.
    } as unknown as V1Deployment["spec"],
  };
  // A kept valueFrom address cannot be read: its exposure is unknown.
  const unreadable = respected.includes("CODER_PROMETHEUS_ADDRESS") && userAddress === undefined;
  const exposure = piiExposure(spec, coderd, unreadable ? undefined : coderAddress, userAddress);
  return { ok: true, apply, coderAddress, respected, piiExposure: exposure };
}

/** The apply that removes everything coder-metrics set on a Deployment (CR deleted or no longer selecting it). */
export function releaseCoderd(deployment: Pick<V1Deployment, "metadata">): V1Deployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: deployment.metadata?.name ?? "",
      namespace: deployment.metadata?.namespace ?? "",
    },
  };
}

/**
 * The status message of a Deployment whose own settings were kept
 * (existingSettings: Respect): which address coderd serves metrics on and why,
 * and that spec.coder.address is then not used. Coder's Helm chart always sets
 * CODER_PROMETHEUS_ADDRESS, so this is the common case.
 */
export function respectedMessage(
  spec: CoderMetricsSpec,
  plan: { respected: readonly string[]; coderAddress: CoderAddress },
): string | undefined {
  if (plan.respected.length === 0) return undefined;
  const address = `${plan.coderAddress.host}:${plan.coderAddress.port}`;
  const others = plan.respected.filter((n) => n !== "CODER_PROMETHEUS_ADDRESS");
  const parts: string[] = [];
  if (plan.respected.includes("CODER_PROMETHEUS_ADDRESS")) {
    parts.push(
      `coderd serves metrics on ${address}, the CODER_PROMETHEUS_ADDRESS already set on the container (existingSettings: Respect)`,
    );
    if (spec.coder.address !== address)
      parts.push(
        `spec.coder.address ${spec.coder.address} is not used (existingSettings: Override applies it)`,
      );
  }
  if (others.length > 0) parts.push(`kept the container's own ${others.join(", ")}`);
  return parts.join("; ");
}
