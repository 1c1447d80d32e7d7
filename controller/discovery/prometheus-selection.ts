// Would some Prometheus actually scrape our ServiceMonitor/PodMonitor? The
// Prometheus Operator's rules: a nil serviceMonitorSelector selects nothing,
// {} selects all; a nil namespace selector means the Prometheus's own
// namespace only, {} means every namespace. The answer (and the reason when
// it is no) is the CR's Discovered condition.
import { type LabelSelector, matchesSelector, unmetRequirements } from "./label-selector.ts";

export interface PrometheusLike {
  kind: "Prometheus" | "PrometheusAgent";
  namespace: string;
  name: string;
  serviceMonitorSelector?: LabelSelector | undefined;
  serviceMonitorNamespaceSelector?: LabelSelector | undefined;
  podMonitorSelector?: LabelSelector | undefined;
  podMonitorNamespaceSelector?: LabelSelector | undefined;
}

export interface MonitorLike {
  kind: "ServiceMonitor" | "PodMonitor";
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
}

export interface Selection {
  discovered: boolean;
  /** namespace/name of every Prometheus that selects the monitor. */
  selectedBy: string[];
  reason: "SelectedByPrometheus" | "NoPrometheus" | "NotSelected";
  message: string;
}

/** Why `prometheus` does not select `monitor`, or undefined when it does. */
export function whyNotSelected(
  prometheus: PrometheusLike,
  monitor: MonitorLike,
): string | undefined {
  const service = monitor.kind === "ServiceMonitor";
  const selectorField = service ? "serviceMonitorSelector" : "podMonitorSelector";
  const nsField = service ? "serviceMonitorNamespaceSelector" : "podMonitorNamespaceSelector";
  const selector = prometheus[selectorField];
  const nsSelector = prometheus[nsField];
  if (selector === undefined)
    return `its ${selectorField} is unset, so it selects no ${monitor.kind}s`;
  const unmet = unmetRequirements(selector, monitor.labels);
  if (unmet.length > 0) {
    return `its ${selectorField} requires ${unmet.join(", ")}; add ${unmet.length > 1 ? "them" : "it"} to spec.monitor.labels`;
  }
  if (nsSelector === undefined) {
    if (prometheus.namespace !== monitor.namespace) {
      return `its ${nsField} is unset, so it only watches namespace ${prometheus.namespace}`;
    }
  } else if (!matchesSelector(nsSelector, monitor.namespaceLabels)) {
    return `its ${nsField} requires namespace labels ${unmetRequirements(nsSelector, monitor.namespaceLabels).join(", ")}`;
  }
  return undefined;
}

export function evaluateSelection(prometheuses: PrometheusLike[], monitor: MonitorLike): Selection {
  if (prometheuses.length === 0) {
    return {
      discovered: false,
      selectedBy: [],
      reason: "NoPrometheus",
      message: "no Prometheus or PrometheusAgent resource exists in the cluster",
    };
  }
  const selectedBy: string[] = [];
  const reasons: string[] = [];
  for (const p of prometheuses) {
    const id = `${p.kind} ${p.namespace}/${p.name}`;
    const why = whyNotSelected(p, monitor);
    if (why === undefined) selectedBy.push(`${p.namespace}/${p.name}`);
    else reasons.push(`${id}: ${why}`);
  }
  if (selectedBy.length > 0) {
    return {
      discovered: true,
      selectedBy,
      reason: "SelectedByPrometheus",
      message: `${monitor.kind} selected by ${selectedBy.join(", ")}`,
    };
  }
  return {
    discovered: false,
    selectedBy,
    reason: "NotSelected",
    message: `no Prometheus selects the ${monitor.kind}: ${reasons.join("; ")}`,
  };
}
