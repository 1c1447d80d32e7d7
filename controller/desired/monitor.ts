// The Prometheus Operator object that makes Prometheus scrape the Service:
// a ServiceMonitor (or a PodMonitor). Its endpoint names the Service's port
// by *name* and its selector is the Service's own labels — the two things the
// Coder docs' example gets wrong.
import type { CoderMetrics, CoderMetricsSpec } from "../api/v1alpha1.ts";
import {
  coderPortName,
  exporterPortName,
  instanceLabel,
  managedBy,
  managedByLabel,
  ownedLabels,
  ownerReference,
} from "./names.ts";

export const monitoringGroup = "monitoring.coreos.com";
export const monitoringApiVersion = `${monitoringGroup}/v1`;
export type MonitorKind = "ServiceMonitor" | "PodMonitor";

export interface MonitorObject {
  apiVersion: string;
  kind: MonitorKind;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences: ReturnType<typeof ownerReference>[];
  };
  spec: Record<string, unknown>;
}

export interface MonitorInput {
  cr: Pick<CoderMetrics, "metadata">;
  spec: CoderMetricsSpec;
  kind: MonitorKind;
  podSelector: Record<string, string>;
  coderPort: number;
}

function scrapeSettings(spec: CoderMetricsSpec) {
  return {
    path: "/metrics",
    interval: spec.monitor.interval,
    ...(spec.monitor.scrapeTimeout ? { scrapeTimeout: spec.monitor.scrapeTimeout } : {}),
    honorLabels: spec.monitor.honorLabels,
  };
}

export function desiredMonitor(input: MonitorInput): MonitorObject {
  const { cr, spec } = input;
  const toExporter = spec.monitor.target === "Exporter";
  const metadata = {
    name: spec.service.name,
    namespace: cr.metadata.namespace,
    labels: { ...spec.monitor.labels, ...ownedLabels(cr) },
    ownerReferences: [ownerReference(cr)],
  };
  if (input.kind === "ServiceMonitor") {
    return {
      apiVersion: monitoringApiVersion,
      kind: "ServiceMonitor",
      metadata,
      spec: {
        selector: {
          matchLabels: { [managedByLabel]: managedBy, [instanceLabel]: cr.metadata.name },
        },
        namespaceSelector: { matchNames: [cr.metadata.namespace] },
        endpoints: [
          { port: toExporter ? exporterPortName : coderPortName, ...scrapeSettings(spec) },
        ],
      },
    };
  }
  return {
    apiVersion: monitoringApiVersion,
    kind: "PodMonitor",
    metadata,
    spec: {
      selector: { matchLabels: { ...input.podSelector } },
      namespaceSelector: { matchNames: [cr.metadata.namespace] },
      // coderd's container may not name its metrics port, so it is addressed by number.
      podMetricsEndpoints: [
        toExporter
          ? { port: exporterPortName, ...scrapeSettings(spec) }
          : { portNumber: input.coderPort, ...scrapeSettings(spec) },
      ],
    },
  };
}
