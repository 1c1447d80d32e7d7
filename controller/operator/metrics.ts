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
    queueAdds: new Counter({
      name: "coder_metrics_controller_workqueue_adds_total",
      help: "Keys added to the work queue (a key already waiting is not added again).",
      registers: [registry],
    }),
    queueRetries: new Counter({
      name: "coder_metrics_controller_workqueue_retries_total",
      help: "Keys re-queued with backoff after a failed reconcile.",
      registers: [registry],
    }),
    queueDuration: new Histogram({
      name: "coder_metrics_controller_workqueue_queue_duration_seconds",
      help: "How long a key waited in the work queue before a worker took it.",
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
      registers: [registry],
    }),
    activeWorkers: new Gauge({
      name: "coder_metrics_controller_active_workers",
      help: "Workers reconciling a key right now.",
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
