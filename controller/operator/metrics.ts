// The controller's own Prometheus metrics.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { version } from "../common/version.ts";

export function createControllerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "coder_metrics_controller_" });
  // Which build runs, Prometheus's *_build_info convention: constant 1, facts in labels.
  new Gauge({
    name: "coder_metrics_controller_build_info",
    help: "The running controller's version (package.json) and Node.js version; always 1.",
    labelNames: ["version", "nodejs_version"] as const,
    registers: [registry],
  }).set({ version, nodejs_version: process.version }, 1);
  return {
    registry,
    reconciles: new Counter({
      name: "coder_metrics_controller_reconcile_total",
      help: "Reconciles by result (success, error, requeue).",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: "coder_metrics_controller_reconcile_duration_seconds",
      help: "Time spent in one reconcile.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: "coder_metrics_controller_workqueue_depth",
      help: "Keys waiting in the work queue.",
      registers: [registry],
    }),
    apiRequests: new Counter({
      name: "coder_metrics_controller_api_requests_total",
      help: "Requests to the Kubernetes API by verb, resource and HTTP status code.",
      labelNames: ["verb", "resource", "code"] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: "coder_metrics_controller_leader",
      help: "1 while this replica holds the leader lease.",
      registers: [registry],
    }),
  };
}

export type ControllerMetrics = ReturnType<typeof createControllerMetrics>;
