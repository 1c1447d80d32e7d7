// `coder-metrics doctor`: the chain from a CoderMetrics to a Prometheus target,
// one check per link, as pure functions of a snapshot of the cluster (read by
// gather.ts). Each check says what it saw and, when it fails, what to do.
//
//   CR present and processed → Deployment matched → coderd env set and rolled
//   out → Service has ready endpoints on the named port → ServiceMonitor
//   selects the Service → some Prometheus selects the ServiceMonitor →
//   (with --prometheus-url) the target is up. Then, with spec.exporter.config.pii,
//   that coderd's raw metrics (personal data) are reachable only through the exporter.
import type { V1Deployment, V1Pod, V1Service } from "@kubernetes/client-node";
import { resolveSpec } from "../api/defaults.ts";
import type { CoderMetricsSpec, CoderMetricsStatus } from "../api/v1alpha1.ts";
import { parseCoderAddress } from "../desired/coder-address.ts";
import { coderPortName, exporterContainerName, exporterPortName } from "../desired/names.ts";
import { piiConfigured, piiExposure } from "../desired/pii-boundary.ts";
import {
  type LabelSelector,
  matchesSelector,
  unmetRequirements,
} from "../discovery/label-selector.ts";
import { evaluateSelection, type PrometheusLike } from "../discovery/prometheus-selection.ts";

export type CheckStatus = "pass" | "fail" | "warn" | "skip";

export interface CheckResult {
  id: CheckId;
  title: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export type CheckId =
  | "cr"
  | "deployment"
  | "coderd"
  | "service"
  | "monitor"
  | "prometheus"
  | "target"
  | "pii";

export interface EndpointSliceLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  endpoints?: Array<{ addresses: string[]; conditions?: { ready?: boolean } }>;
  ports?: Array<{ name?: string; port?: number }>;
}

export interface MonitorSnapshot {
  kind: "ServiceMonitor" | "PodMonitor";
  name: string;
  labels: Record<string, string>;
  selector?: LabelSelector;
  namespaceSelector?: { any?: boolean; matchNames?: string[] };
  endpointPorts: string[];
}

export interface TargetLike {
  labels: Record<string, string>;
  health: string;
  lastError: string;
  scrapeUrl: string;
}

export interface Snapshot {
  namespace: string;
  name: string;
  cr?:
    | {
        metadata: { generation?: number };
        spec: unknown;
        status?: CoderMetricsStatus;
      }
    | undefined;
  deployments: V1Deployment[];
  pods: V1Pod[];
  service?: V1Service | undefined;
  endpointSlices: EndpointSliceLike[];
  /** undefined: the monitoring.coreos.com CRD is not served. */
  monitor?: MonitorSnapshot | undefined;
  monitoringServed: boolean;
  prometheuses: PrometheusLike[] | { unknown: string };
  namespaceLabels: Record<string, string>;
  /** Only with --prometheus-url: the active targets, or why they could not be read. */
  targets?: TargetLike[] | { error: string } | undefined;
}

const titles: Record<CheckId, string> = {
  cr: "CoderMetrics exists and the controller processed it",
  deployment: "a Coder Deployment matches spec.selector",
  coderd: "coderd has its Prometheus settings and is rolled out",
  service: "the Service has ready endpoints on the scraped port",
  monitor: "the ServiceMonitor selects the Service",
  prometheus: "a Prometheus selects the ServiceMonitor",
  target: "Prometheus scrapes the target and it is up",
  pii: "personal data is reachable only through the exporter",
};

function result(id: CheckId, status: CheckStatus, detail: string, fix?: string): CheckResult {
  return { id, title: titles[id], status, detail, ...(fix ? { fix } : {}) };
}

const skipped = (id: CheckId, why: string) => result(id, "skip", why);

function selectedDeployments(s: Snapshot, spec: CoderMetricsSpec): V1Deployment[] {
  return s.deployments.filter((d) => matchesSelector(spec.selector, d.metadata?.labels));
}

export function checkCr(s: Snapshot): CheckResult {
  const ref = `CoderMetrics ${s.namespace}/${s.name}`;
  if (s.cr === undefined) {
    return result(
      "cr",
      "fail",
      `${ref} not found`,
      `create it: kubectl apply -n ${s.namespace} -f manifests/examples/minimal.yaml (or list them: kubectl get codermetrics -A)`,
    );
  }
  const status = s.cr.status;
  const generation = s.cr.metadata.generation ?? 0;
  if (status?.observedGeneration === undefined || (status.conditions ?? []).length === 0) {
    return result(
      "cr",
      "fail",
      `${ref} has no status: no controller has processed it`,
      "is the controller running and watching this namespace? kubectl get pods -A -l app.kubernetes.io/name=coder-metrics; kubectl logs deploy/<release>-coder-metrics",
    );
  }
  if (status.observedGeneration < generation) {
    return result(
      "cr",
      "warn",
      `${ref} generation ${generation} not processed yet (status is for ${status.observedGeneration})`,
      "wait a few seconds; if it stays, check the controller's logs",
    );
  }
  const invalid = status.conditions?.find((c) => c.reason === "InvalidConfig");
  if (invalid)
    return result("cr", "fail", `${ref}: ${invalid.message}`, "fix spec.exporter.config");
  return result("cr", "pass", `${ref} processed (generation ${generation})`);
}

export function checkDeployment(s: Snapshot): CheckResult {
  if (s.cr === undefined) return skipped("deployment", "no CoderMetrics");
  const spec = resolveSpec(s.cr.spec);
  const selected = selectedDeployments(s, spec);
  if (selected.length === 0) {
    const seen = s.deployments
      .map(
        (d) =>
          `${d.metadata?.name} (${
            Object.entries(d.metadata?.labels ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(",") || "no labels"
          })`,
      )
      .join("; ");
    return result(
      "deployment",
      "fail",
      `no Deployment in ${s.namespace} matches spec.selector ${JSON.stringify(spec.selector)}${seen ? `; Deployments here: ${seen}` : "; there are no Deployments in this namespace"}`,
      "set spec.selector to your Coder Deployment's labels, or create the CoderMetrics in Coder's namespace",
    );
  }
  return result(
    "deployment",
    "pass",
    `matched ${selected.map((d) => d.metadata?.name).join(", ")}`,
  );
}

/** Does the pod run coderd with metrics enabled (and the sidecar when expected)? */
function podConfigured(pod: V1Pod, spec: CoderMetricsSpec): boolean {
  const containers = pod.spec?.containers ?? [];
  const coderd = containers.find((c) => c.name === spec.coderContainer);
  const enabled = coderd?.env?.find((e) => e.name === "CODER_PROMETHEUS_ENABLE")?.value;
  const sidecar = containers.some((c) => c.name === exporterContainerName);
  return (
    enabled !== undefined &&
    ["1", "t", "T", "true", "TRUE", "True"].includes(enabled) &&
    (sidecar || !spec.exporter.enabled)
  );
}

export function checkCoderd(s: Snapshot): CheckResult {
  if (s.cr === undefined) return skipped("coderd", "no CoderMetrics");
  const spec = resolveSpec(s.cr.spec);
  const selected = selectedDeployments(s, spec);
  if (selected.length === 0) return skipped("coderd", "no Deployment matched");
  const problems: string[] = [];
  for (const d of selected) {
    const name = d.metadata?.name ?? "";
    const containers = d.spec?.template.spec?.containers ?? [];
    const coderd = containers.find((c) => c.name === spec.coderContainer);
    if (coderd === undefined) {
      problems.push(
        `${name}: no container "${spec.coderContainer}" (has ${containers.map((c) => c.name).join(", ")}); set spec.coderContainer`,
      );
      continue;
    }
    const env = new Map((coderd.env ?? []).map((e) => [e.name, e.value]));
    if (
      !["1", "t", "T", "true", "TRUE", "True"].includes(env.get("CODER_PROMETHEUS_ENABLE") ?? "")
    ) {
      problems.push(
        `${name}: CODER_PROMETHEUS_ENABLE is ${env.has("CODER_PROMETHEUS_ENABLE") ? `"${env.get("CODER_PROMETHEUS_ENABLE")}"` : "not set"}`,
      );
    }
    if (!env.has("CODER_PROMETHEUS_ADDRESS"))
      problems.push(
        `${name}: CODER_PROMETHEUS_ADDRESS is not set (coderd would listen on 127.0.0.1 only)`,
      );
    else if (
      /^(127\.0\.0\.1|localhost|\[::1\]):/.test(env.get("CODER_PROMETHEUS_ADDRESS") ?? "") &&
      !spec.exporter.enabled
    ) {
      problems.push(
        `${name}: CODER_PROMETHEUS_ADDRESS ${env.get("CODER_PROMETHEUS_ADDRESS")} is reachable from inside the pod only`,
      );
    }
    if (spec.exporter.enabled && !containers.some((c) => c.name === exporterContainerName)) {
      problems.push(`${name}: no ${exporterContainerName} sidecar`);
    }
    const wanted = d.spec?.replicas ?? 1;
    const st = d.status ?? {};
    const rolledOut =
      (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
      (st.updatedReplicas ?? 0) >= wanted &&
      (st.availableReplicas ?? 0) >= wanted &&
      (st.replicas ?? 0) === (st.updatedReplicas ?? 0);
    if (!rolledOut) {
      problems.push(
        `${name}: rollout not finished (${st.updatedReplicas ?? 0}/${wanted} updated, ${st.availableReplicas ?? 0} available); kubectl rollout status -n ${s.namespace} deploy/${name}`,
      );
    }
    const selector = d.spec?.selector?.matchLabels ?? {};
    const pods = s.pods.filter(
      (p) =>
        !p.metadata?.deletionTimestamp &&
        matchesSelector({ matchLabels: selector }, p.metadata?.labels),
    );
    const stale = pods.filter((p) => !podConfigured(p, spec)).map((p) => p.metadata?.name);
    if (rolledOut && stale.length > 0)
      problems.push(`${name}: pods without the settings: ${stale.join(", ")}`);
  }
  if (problems.length > 0) {
    const byController = s.cr.status?.deployments?.find((d) => !d.configured)?.message;
    return result(
      "coderd",
      "fail",
      problems.join("; "),
      byController
        ? `the controller says: ${byController}`
        : "check the CoderConfigured condition: kubectl describe codermetrics",
    );
  }
  return result(
    "coderd",
    "pass",
    `metrics enabled and rolled out on ${selected.map((d) => d.metadata?.name).join(", ")}`,
  );
}

/** The Service port Prometheus scrapes: the exporter's, or coderd's with monitor.target Coderd. */
export function scrapedPortName(spec: CoderMetricsSpec): string {
  return spec.monitor.target === "Exporter" && spec.exporter.enabled
    ? exporterPortName
    : coderPortName;
}

export function checkService(s: Snapshot): CheckResult {
  if (s.cr === undefined) return skipped("service", "no CoderMetrics");
  const spec = resolveSpec(s.cr.spec);
  const name = spec.service.name;
  const portName = scrapedPortName(spec);
  if (s.service === undefined) {
    return result(
      "service",
      "fail",
      `Service ${s.namespace}/${name} not found`,
      "see the ServiceReady condition: kubectl describe codermetrics",
    );
  }
  const ports = (s.service.spec?.ports ?? []).map((p) => p.name ?? "");
  if (!ports.includes(portName)) {
    return result(
      "service",
      "fail",
      `Service ${name} has no port named ${portName} (ports: ${ports.join(", ")})`,
      "the controller owns this Service; check its logs",
    );
  }
  const slices = s.endpointSlices.filter(
    (e) => e.metadata?.labels?.["kubernetes.io/service-name"] === name,
  );
  const ready = slices.flatMap((e) =>
    (e.ports ?? []).some((p) => p.name === portName)
      ? (e.endpoints ?? []).filter((x) => x.conditions?.ready !== false).flatMap((x) => x.addresses)
      : [],
  );
  if (ready.length === 0) {
    const notReady = slices.flatMap((e) =>
      (e.endpoints ?? []).filter((x) => x.conditions?.ready === false).flatMap((x) => x.addresses),
    );
    return result(
      "service",
      "fail",
      notReady.length > 0
        ? `Service ${name}: endpoints ${notReady.join(", ")} are not ready`
        : `Service ${name} has no endpoints: its selector ${JSON.stringify(s.service.spec?.selector ?? {})} matches no ready pod`,
      `kubectl get pods -n ${s.namespace} -l ${Object.entries(s.service.spec?.selector ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(",")}; a pod whose ${exporterContainerName} is not ready is not an endpoint`,
    );
  }
  return result(
    "service",
    "pass",
    `Service ${name} has ${ready.length} ready endpoint(s) on ${portName}: ${ready.join(", ")}`,
  );
}

export function checkMonitor(s: Snapshot): CheckResult {
  if (s.cr === undefined) return skipped("monitor", "no CoderMetrics");
  const spec = resolveSpec(s.cr.spec);
  if (spec.monitor.mode === "Disabled") return skipped("monitor", "spec.monitor.mode is Disabled");
  if (!s.monitoringServed) {
    return result(
      "monitor",
      "fail",
      "monitoring.coreos.com is not served: the Prometheus Operator is not installed",
      "install the Operator (kube-prometheus-stack), or use status.scrapeConfig in a plain Prometheus",
    );
  }
  const m = s.monitor;
  if (m === undefined) {
    return result(
      "monitor",
      "fail",
      `no ServiceMonitor or PodMonitor ${spec.service.name} in ${s.namespace}`,
      "see the ServiceMonitorReady condition: kubectl describe codermetrics",
    );
  }
  if (m.kind === "PodMonitor")
    return result("monitor", "pass", `PodMonitor ${m.name} (selects pods directly)`);
  if (s.service === undefined) return skipped("monitor", "no Service to select");
  const serviceLabels = s.service.metadata?.labels ?? {};
  if (m.selector === undefined || !matchesSelector(m.selector, serviceLabels)) {
    const unmet = m.selector ? unmetRequirements(m.selector, serviceLabels) : ["(no selector)"];
    return result(
      "monitor",
      "fail",
      `ServiceMonitor ${m.name}'s selector needs ${unmet.join(", ")} on Service ${s.service.metadata?.name}`,
      "the controller owns both; check its logs",
    );
  }
  const ns = m.namespaceSelector;
  if (ns && !ns.any && ns.matchNames && !ns.matchNames.includes(s.namespace)) {
    return result(
      "monitor",
      "fail",
      `ServiceMonitor ${m.name} looks in namespaces ${ns.matchNames.join(", ")}, not ${s.namespace}`,
    );
  }
  const portName = scrapedPortName(spec);
  if (!m.endpointPorts.includes(portName)) {
    return result(
      "monitor",
      "fail",
      `ServiceMonitor ${m.name} scrapes port(s) ${m.endpointPorts.join(", ")}, the Service's is ${portName}`,
    );
  }
  return result(
    "monitor",
    "pass",
    `ServiceMonitor ${m.name} selects Service ${s.service.metadata?.name} on port ${portName}`,
  );
}

export function checkPrometheus(s: Snapshot): CheckResult {
  const m = s.monitor;
  if (m === undefined) return skipped("prometheus", "no ServiceMonitor");
  if (!Array.isArray(s.prometheuses)) {
    return result(
      "prometheus",
      "warn",
      `cannot tell: ${s.prometheuses.unknown}`,
      "run doctor with credentials that may list prometheuses.monitoring.coreos.com cluster-wide",
    );
  }
  const selection = evaluateSelection(s.prometheuses, {
    kind: m.kind,
    namespace: s.namespace,
    labels: m.labels,
    namespaceLabels: s.namespaceLabels,
  });
  if (!selection.discovered) {
    return result(
      "prometheus",
      "fail",
      selection.message,
      selection.reason === "NoPrometheus"
        ? "install kube-prometheus-stack (or create a Prometheus resource)"
        : "add the labels it requires to spec.monitor.labels of the CoderMetrics (e.g. release: kube-prometheus-stack)",
    );
  }
  return result("prometheus", "pass", selection.message);
}

export function checkTarget(s: Snapshot): CheckResult {
  if (s.targets === undefined)
    return skipped("target", "pass --prometheus-url to check the target");
  if (!Array.isArray(s.targets))
    return result(
      "target",
      "fail",
      `could not read Prometheus targets: ${s.targets.error}`,
      "check --prometheus-url (e.g. kubectl port-forward svc/prometheus-operated 9090)",
    );
  const spec = s.cr ? resolveSpec(s.cr.spec) : undefined;
  const service = spec?.service.name ?? "coder-prom";
  const ours = s.targets.filter(
    (t) =>
      t.labels.namespace === s.namespace &&
      (t.labels.service === service || t.labels.job?.includes(`/${s.namespace}/${service}/`)),
  );
  if (ours.length === 0) {
    return result(
      "target",
      "fail",
      `Prometheus has no target for Service ${s.namespace}/${service}`,
      "if every step above passes, wait for the Operator to regenerate the config (a minute) and Prometheus to reload",
    );
  }
  const down = ours.filter((t) => t.health !== "up");
  if (down.length > 0) {
    return result(
      "target",
      "fail",
      down
        .map((t) => `${t.scrapeUrl} is ${t.health}: ${t.lastError || "no scrape yet"}`)
        .join("; "),
      "check the exporter: kubectl logs -c coder-metrics-exporter, and its /readyz",
    );
  }
  return result(
    "target",
    "pass",
    `${ours.length} target(s) up: ${ours.map((t) => t.scrapeUrl).join(", ")}`,
  );
}

/** Where a coderd container serves raw metrics, as the PII check sees it (undefined: fine). */
function coderdExposure(
  spec: CoderMetricsSpec,
  containers: ReadonlyArray<NonNullable<V1Pod["spec"]>["containers"][number]>,
): { status: "Exposed" | "Unknown"; message: string } | undefined {
  const coderd = containers.find((c) => c.name === spec.coderContainer);
  if (coderd === undefined) return undefined;
  const env = coderd.env?.find((e) => e.name === "CODER_PROMETHEUS_ADDRESS");
  // Unset: Coder's default, 127.0.0.1:2112.
  const text = env === undefined ? "127.0.0.1:2112" : env.value;
  return piiExposure(spec, coderd, text === undefined ? undefined : parseCoderAddress(text), text);
}

export function checkPii(s: Snapshot): CheckResult {
  if (s.cr === undefined) return skipped("pii", "no CoderMetrics");
  const spec = resolveSpec(s.cr.spec);
  if (!piiConfigured(spec))
    return skipped("pii", "spec.exporter.config.pii is not set: no personal data to guard");
  const exposed: string[] = [];
  const unknown: string[] = [];
  const note = (what: string, e: ReturnType<typeof coderdExposure>) => {
    if (e?.status === "Exposed") exposed.push(`${what}: ${e.message}`);
    else if (e?.status === "Unknown") unknown.push(`${what}: ${e.message}`);
  };
  const selected = selectedDeployments(s, spec);
  for (const d of selected)
    note(
      `Deployment ${d.metadata?.name}`,
      coderdExposure(spec, d.spec?.template.spec?.containers ?? []),
    );
  for (const d of selected) {
    const selector = d.spec?.selector?.matchLabels ?? {};
    for (const p of s.pods) {
      if (p.metadata?.deletionTimestamp) continue;
      if (!matchesSelector({ matchLabels: selector }, p.metadata?.labels)) continue;
      note(`pod ${p.metadata?.name}`, coderdExposure(spec, p.spec?.containers ?? []));
    }
  }
  const ports = s.service?.spec?.ports ?? [];
  const coderdPort = ports.find((p) => p.name === coderPortName);
  if (coderdPort) {
    exposed.push(
      `Service ${s.service?.metadata?.name} exposes coderd's raw metrics as ${coderPortName}:${coderdPort.port}`,
    );
  }
  const annotated = s.service?.metadata?.annotations?.["prometheus.io/port"];
  if (annotated !== undefined && annotated !== String(spec.exporter.port)) {
    exposed.push(
      `Service ${s.service?.metadata?.name}'s prometheus.io/port is ${annotated}, not the exporter's ${spec.exporter.port}`,
    );
  }
  if (s.monitor?.endpointPorts.includes(coderPortName)) {
    exposed.push(`${s.monitor.kind} ${s.monitor.name} scrapes ${coderPortName} (coderd directly)`);
  }
  if (exposed.length > 0) {
    return result(
      "pii",
      "fail",
      exposed.join("; "),
      "coder-metrics keeps coderd on 127.0.0.1 when exporter.config.pii is set: remove the coderd container's own CODER_PROMETHEUS_ADDRESS or --prometheus-address (or set spec.coder.existingSettings: Override), and wait for the rollout; see the PIIProtected condition",
    );
  }
  if (unknown.length > 0) {
    return result(
      "pii",
      "warn",
      unknown.join("; "),
      "make CODER_PROMETHEUS_ADDRESS a plain loopback value (127.0.0.1:<port>)",
    );
  }
  return result(
    "pii",
    "pass",
    `coderd serves raw metrics on loopback only${selected.length ? ` (${selected.map((d) => d.metadata?.name).join(", ")})` : ""}; the Service exposes ${ports.map((p) => p.name).join(", ") || "no port"}`,
  );
}

/** Every check, in chain order (the PII check last: it is not a link of the chain). */
export function runChecks(s: Snapshot): CheckResult[] {
  return [
    checkCr(s),
    checkDeployment(s),
    checkCoderd(s),
    checkService(s),
    checkMonitor(s),
    checkPrometheus(s),
    checkTarget(s),
    checkPii(s),
  ];
}

/** Non-zero when a check failed. */
export function exitCode(results: readonly CheckResult[]): number {
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

const marks: Record<CheckStatus, string> = { pass: "✓", fail: "✗", warn: "!", skip: "-" };

export function formatReport(
  s: Pick<Snapshot, "namespace" | "name">,
  results: readonly CheckResult[],
): string {
  const lines = [`coder-metrics doctor: CoderMetrics ${s.namespace}/${s.name}`, ""];
  results.forEach((r, i) => {
    lines.push(`${marks[r.status]} ${i + 1}. ${r.title}`);
    lines.push(`     ${r.detail}`);
    if (r.fix && (r.status === "fail" || r.status === "warn")) lines.push(`     fix: ${r.fix}`);
  });
  const failed = results.filter((r) => r.status === "fail").length;
  lines.push("", failed === 0 ? "all checks passed" : `${failed} check(s) failed`);
  return `${lines.join("\n")}\n`;
}
