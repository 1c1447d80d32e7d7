// A Prometheus scrape_configs job for users without the Prometheus Operator:
// what the ServiceMonitor would make the Operator generate, written out —
// endpointslice discovery in the CR's namespace, only the Service's named
// port, and the same job/namespace/service/pod/container/endpoint labels, so
// dashboards and alerts work the same either way. Plus a static_configs
// variant for a Prometheus outside the cluster.
import { stringify } from "yaml";
import type { CoderMetrics, CoderMetricsSpec } from "../api/v1alpha1.ts";
import { coderPortName, exporterPortName } from "./names.ts";

export interface ScrapeConfigInput {
  cr: Pick<CoderMetrics, "metadata">;
  spec: CoderMetricsSpec;
}

export function scrapePortName(spec: CoderMetricsSpec): string {
  return spec.monitor.target === "Exporter" && spec.exporter.enabled
    ? exporterPortName
    : coderPortName;
}

function common(spec: CoderMetricsSpec) {
  return {
    job_name: spec.service.name,
    scrape_interval: spec.monitor.interval,
    ...(spec.monitor.scrapeTimeout ? { scrape_timeout: spec.monitor.scrapeTimeout } : {}),
    honor_labels: spec.monitor.honorLabels,
    metrics_path: "/metrics",
    scheme: "http",
  };
}

/** The in-cluster job (kubernetes_sd_configs, role endpointslice). */
export function kubernetesScrapeJob({ cr, spec }: ScrapeConfigInput): Record<string, unknown> {
  const meta = (name: string) => `__meta_kubernetes_${name}`;
  return {
    ...common(spec),
    kubernetes_sd_configs: [
      { role: "endpointslice", namespaces: { names: [cr.metadata.namespace] } },
    ],
    relabel_configs: [
      { source_labels: [meta("service_name")], regex: spec.service.name, action: "keep" },
      {
        source_labels: [meta("endpointslice_port_name")],
        regex: scrapePortName(spec),
        action: "keep",
      },
      { source_labels: [meta("namespace")], target_label: "namespace" },
      { source_labels: [meta("service_name")], target_label: "service" },
      { source_labels: [meta("pod_name")], target_label: "pod" },
      { source_labels: [meta("pod_container_name")], target_label: "container" },
      { source_labels: [meta("endpointslice_port_name")], target_label: "endpoint" },
      { target_label: "job", replacement: spec.service.name },
    ],
  };
}

/** A job for Prometheus outside the cluster, scraping addresses you expose (NodePort, Ingress, …). */
export function staticScrapeJob(
  { spec }: ScrapeConfigInput,
  targets: string[],
): Record<string, unknown> {
  return { ...common(spec), static_configs: [{ targets, labels: { service: spec.service.name } }] };
}

export function scrapeConfigYaml(job: Record<string, unknown>): string {
  return stringify({ scrape_configs: [job] }, { lineWidth: 0 });
}
