// The doctor's I/O: reads what the checks need from the API server (and,
// when given, Prometheus's targets API) into a Snapshot. Read-only; every
// read that fails for lack of permission is reported, not thrown.
import type { V1Deployment, V1Pod, V1Service } from "@kubernetes/client-node";
import type * as k8s from "@kubernetes/client-node";
import { group, plural, version } from "../api/v1alpha1.ts";
import { resolveSpec } from "../api/defaults.ts";
import type { LabelSelector } from "../discovery/label-selector.ts";
import type { PrometheusLike } from "../discovery/prometheus-selection.ts";
import { kubeFetch } from "../operator/kube-fetch.ts";
import type { EndpointSliceLike, MonitorSnapshot, Snapshot, TargetLike } from "./checks.ts";

async function get<T>(config: k8s.KubeConfig, path: string): Promise<{ status: number; body: T }> {
  const r = await kubeFetch(config, "GET", path);
  return { status: r.status, body: r.body as T };
}

async function items<T>(config: k8s.KubeConfig, path: string): Promise<T[]> {
  const r = await get<{ items?: T[] }>(config, path);
  return r.status === 200 ? (r.body.items ?? []) : [];
}

/** The only CoderMetrics in the namespace, when --name is not given. */
export async function soleCoderMetrics(
  config: k8s.KubeConfig,
  namespace: string,
): Promise<string[]> {
  const list = await items<{ metadata: { name: string } }>(
    config,
    `/apis/${group}/${version}/namespaces/${namespace}/${plural}`,
  );
  return list.map((cr) => cr.metadata.name);
}

type PrometheusObject = {
  kind?: string;
  metadata: { name: string; namespace: string };
  spec?: Omit<PrometheusLike, "kind" | "namespace" | "name">;
};

async function prometheuses(
  config: k8s.KubeConfig,
): Promise<PrometheusLike[] | { unknown: string }> {
  const out: PrometheusLike[] = [];
  for (const [apiVersion, resource, kind] of [
    ["monitoring.coreos.com/v1", "prometheuses", "Prometheus"],
    ["monitoring.coreos.com/v1alpha1", "prometheusagents", "PrometheusAgent"],
  ] as const) {
    const r = await get<{ items?: PrometheusObject[] }>(config, `/apis/${apiVersion}/${resource}`);
    if (r.status === 404) continue; // kind not served
    if (r.status !== 200) return { unknown: `listing ${resource} cluster-wide: HTTP ${r.status}` };
    for (const p of r.body.items ?? []) {
      out.push({
        kind,
        namespace: p.metadata.namespace,
        name: p.metadata.name,
        serviceMonitorSelector: p.spec?.serviceMonitorSelector,
        serviceMonitorNamespaceSelector: p.spec?.serviceMonitorNamespaceSelector,
        podMonitorSelector: p.spec?.podMonitorSelector,
        podMonitorNamespaceSelector: p.spec?.podMonitorNamespaceSelector,
      });
    }
  }
  return out;
}

type MonitorObject = {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    selector?: LabelSelector;
    namespaceSelector?: { any?: boolean; matchNames?: string[] };
    endpoints?: Array<{ port?: string }>;
    podMetricsEndpoints?: Array<{ port?: string }>;
  };
};

async function monitor(
  config: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<{ served: boolean; monitor: MonitorSnapshot | undefined }> {
  const discovery = await get<{ resources?: Array<{ name: string }> }>(
    config,
    "/apis/monitoring.coreos.com/v1",
  );
  if (discovery.status !== 200) return { served: false, monitor: undefined };
  for (const [resource, kind] of [
    ["servicemonitors", "ServiceMonitor"],
    ["podmonitors", "PodMonitor"],
  ] as const) {
    const r = await get<MonitorObject>(
      config,
      `/apis/monitoring.coreos.com/v1/namespaces/${namespace}/${resource}/${name}`,
    );
    if (r.status !== 200) continue;
    const spec = r.body.spec ?? {};
    return {
      served: true,
      monitor: {
        kind,
        name,
        labels: r.body.metadata.labels ?? {},
        ...(spec.selector ? { selector: spec.selector } : {}),
        ...(spec.namespaceSelector ? { namespaceSelector: spec.namespaceSelector } : {}),
        endpointPorts: (spec.endpoints ?? spec.podMetricsEndpoints ?? []).map((e) => e.port ?? ""),
      },
    };
  }
  return { served: true, monitor: undefined };
}

async function targets(prometheusUrl: string): Promise<TargetLike[] | { error: string }> {
  try {
    const r = await fetch(new URL("/api/v1/targets?state=active", prometheusUrl), {
      signal: AbortSignal.timeout(10_000),
    });
    if (!r.ok) return { error: `HTTP ${r.status}` };
    const body = (await r.json()) as { data?: { activeTargets?: TargetLike[] } };
    return body.data?.activeTargets ?? [];
  } catch (err) {
    return { error: String((err as Error).cause ?? err) };
  }
}

export async function gather(
  config: k8s.KubeConfig,
  namespace: string,
  name: string,
  prometheusUrl?: string,
): Promise<Snapshot> {
  const ns = `/namespaces/${namespace}`;
  const cr = await get<Snapshot["cr"]>(config, `/apis/${group}/${version}${ns}/${plural}/${name}`);
  const found = cr.status === 200 ? cr.body : undefined;
  const serviceName = resolveSpec(found?.spec).service.name;
  const service = await get<V1Service>(config, `/api/v1${ns}/services/${serviceName}`);
  const namespaceObject = await get<{ metadata?: { labels?: Record<string, string> } }>(
    config,
    `/api/v1/namespaces/${namespace}`,
  );
  const m = await monitor(config, namespace, serviceName);
  return {
    namespace,
    name,
    cr: found,
    deployments: await items<V1Deployment>(config, `/apis/apps/v1${ns}/deployments`),
    pods: await items<V1Pod>(config, `/api/v1${ns}/pods`),
    service: service.status === 200 ? service.body : undefined,
    endpointSlices: await items<EndpointSliceLike>(
      config,
      `/apis/discovery.k8s.io/v1${ns}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${serviceName}`)}`,
    ),
    monitor: m.monitor,
    monitoringServed: m.served,
    prometheuses: m.served ? await prometheuses(config) : [],
    namespaceLabels: namespaceObject.body.metadata?.labels ?? {},
    targets: prometheusUrl ? await targets(prometheusUrl) : undefined,
  };
}
