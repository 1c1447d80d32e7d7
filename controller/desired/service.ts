// The headless Service Prometheus discovers coderd through — what Coder's docs
// ask users to write by hand, with the labels the ServiceMonitor selects on
// (which the docs' example forgets).
import type { V1Service, V1ServicePort } from "@kubernetes/client-node";
import type { CoderMetrics, CoderMetricsSpec } from "../api/v1alpha1.ts";
import { coderPortName, exporterPortName, ownedLabels, ownerReference } from "./names.ts";
import { piiConfigured } from "./pii-boundary.ts";

export interface ServiceInput {
  cr: Pick<CoderMetrics, "metadata">;
  spec: CoderMetricsSpec;
  /** Pod selector: the labels every matched Coder Deployment selects its pods by. */
  podSelector: Record<string, string>;
  coderPort: number;
}

/** The Service's ports: coderd's and the exporter's; only the exporter's when it guards personal data (pii). */
export function servicePorts(spec: CoderMetricsSpec, coderPort: number): V1ServicePort[] {
  const ports: V1ServicePort[] = piiConfigured(spec)
    ? []
    : [{ name: coderPortName, port: coderPort, targetPort: coderPort, protocol: "TCP" }];
  if (spec.exporter.enabled) {
    ports.push({
      name: exporterPortName,
      port: spec.exporter.port,
      targetPort: spec.exporter.port,
      protocol: "TCP",
    });
  }
  return ports;
}

/** prometheus.io/* annotations pointing at the port Prometheus should scrape. */
export function scrapeAnnotations(
  spec: CoderMetricsSpec,
  coderPort: number,
): Record<string, string> {
  return {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": String(
      (spec.monitor.target === "Exporter" && spec.exporter.enabled) || piiConfigured(spec)
        ? spec.exporter.port
        : coderPort,
    ),
    "prometheus.io/path": "/metrics",
    "prometheus.io/scheme": "http",
  };
}

export function desiredService(input: ServiceInput): V1Service {
  const { cr, spec } = input;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: spec.service.name,
      namespace: cr.metadata.namespace,
      labels: { ...spec.service.labels, ...ownedLabels(cr) },
      ...(spec.service.annotations || spec.prometheusAnnotations.service
        ? {
            annotations: {
              ...spec.service.annotations,
              ...(spec.prometheusAnnotations.service
                ? scrapeAnnotations(spec, input.coderPort)
                : {}),
            },
          }
        : {}),
      ownerReferences: [ownerReference(cr)],
    },
    spec: {
      clusterIP: "None",
      selector: { ...input.podSelector },
      ports: servicePorts(spec, input.coderPort),
    },
  };
}

/**
 * The labels common to every matched Deployment's pod selector: a Service
 * selector that reaches all their pods. Empty when they share none — then no
 * safe selector exists and the caller reports it.
 */
export function commonPodSelector(
  selectors: Array<Record<string, string> | undefined>,
): Record<string, string> {
  const [first, ...rest] = selectors;
  if (first === undefined) return {};
  return Object.fromEntries(
    Object.entries(first).filter(([k, v]) => rest.every((s) => s?.[k] === v)),
  );
}
