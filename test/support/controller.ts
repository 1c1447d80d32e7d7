// Runs the real controller in-process against the test cluster, watching only
// the given namespaces so test files running side by side do not interfere.
// Tests observe it as users do: through the Prometheus registry it reports to
// (the one handed in here), never through fields of the Controller.
import type { TestContext } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { createLogger } from "../../controller/common/log.ts";
import { Controller } from "../../controller/operator/controller.ts";
import {
  type ControllerMetrics,
  createControllerMetrics,
} from "../../controller/operator/metrics.ts";
import { eventually } from "./kube.ts";

export const testExporterImage = "ghcr.io/coder-metrics/coder-metrics:test";

/** The registry each controller started here reports to. */
const registries = new WeakMap<Controller, ControllerMetrics["registry"]>();

export async function startController(
  t: TestContext,
  namespaces: string[],
  options: {
    discoveryTtlMs?: number;
    resyncMs?: number;
    recheckMs?: number;
    kubeconfigPath?: string;
    allowedExporterImages?: string[];
    kubeconfig?: k8s.KubeConfig;
    requestTimeoutMs?: number;
    watchTimeoutMs?: number;
  } = {},
): Promise<Controller> {
  let kubeconfig = options.kubeconfig;
  if (kubeconfig === undefined) {
    kubeconfig = new k8s.KubeConfig();
    if (options.kubeconfigPath) kubeconfig.loadFromFile(options.kubeconfigPath);
    else kubeconfig.loadFromDefault();
  }
  const metrics = createControllerMetrics();
  const controller = new Controller({
    kubeconfig,
    watchNamespaces: namespaces,
    exporterImage: testExporterImage,
    ...(options.allowedExporterImages
      ? { allowedExporterImages: options.allowedExporterImages }
      : {}),
    log: createLogger({
      level: (process.env.TEST_CONTROLLER_LOG as "debug" | "info" | "warn" | undefined) ?? "error",
    }),
    metrics,
    discoveryTtlMs: options.discoveryTtlMs ?? 1000,
    resyncMs: options.resyncMs ?? 600_000,
    recheckMs: options.recheckMs ?? 1000,
    ...(options.requestTimeoutMs !== undefined
      ? { requestTimeoutMs: options.requestTimeoutMs }
      : {}),
    ...(options.watchTimeoutMs !== undefined ? { watchTimeoutMs: options.watchTimeoutMs } : {}),
  });
  registries.set(controller, metrics.registry);
  t.after(() => controller.stop());
  await controller.start();
  return controller;
}

/** Every sample of a metric in the controller's registry. */
export async function samples(
  controller: Controller,
  name: string,
): Promise<Array<{ labels: Partial<Record<string, string | number>>; value: number }>> {
  const registry = registries.get(controller);
  if (registry === undefined) throw new Error("not a controller started by startController");
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`the controller does not export ${name}`);
  return (await metric.get()).values;
}

async function total(controller: Controller, name: string): Promise<number> {
  return (await samples(controller, name)).reduce((sum, v) => sum + v.value, 0);
}

/** Write requests the controller made so far (apply, patch, create, delete, status). */
export async function writeCount(controller: Controller): Promise<number> {
  return (await samples(controller, "coder_metrics_controller_api_requests_total"))
    .filter(
      (v) =>
        !["get", "list", "watch", "discover"].includes(String(v.labels.verb)) &&
        v.labels.resource !== "Event",
    )
    .reduce((sum, v) => sum + v.value, 0);
}

/** Reconciles finished so far (any result). */
export function reconcileCount(controller: Controller): Promise<number> {
  return total(controller, "coder_metrics_controller_reconcile_total");
}

/** Nothing queued and no worker busy, as the work-queue gauges say. */
async function idle(controller: Controller): Promise<boolean> {
  return (
    (await total(controller, "coder_metrics_controller_workqueue_depth")) === 0 &&
    (await total(controller, "coder_metrics_controller_active_workers")) === 0
  );
}

/** Reconciles every CoderMetrics once more and waits until the queue is idle again. */
export async function resyncAndSettle(controller: Controller): Promise<void> {
  const before = await reconcileCount(controller);
  controller.resync();
  await eventually("the resync to run", async () =>
    (await reconcileCount(controller)) > before && (await idle(controller)) ? true : undefined,
  );
}

/**
 * Waits until the controller is idle and has written nothing for `quietMs`:
 * Ready can be seen while the reconcile its own writes trigger is still queued.
 */
export async function settled(controller: Controller, quietMs = 1000): Promise<void> {
  let last = await writeCount(controller);
  let since = Date.now();
  await eventually("the controller to settle", async () => {
    const now = await writeCount(controller);
    if (now !== last || !(await idle(controller))) {
      last = now;
      since = Date.now();
      return undefined;
    }
    return Date.now() - since >= quietMs ? true : undefined;
  });
}
