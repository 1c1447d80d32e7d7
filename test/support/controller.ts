// Runs the real controller in-process against the test cluster, watching only
// the given namespaces so test files running side by side do not interfere.
import type { TestContext } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { Controller } from "../../controller/operator/controller.ts";
import { createLogger } from "../../controller/common/log.ts";
import { eventually } from "./kube.ts";

export const testExporterImage = "ghcr.io/coder-metrics/coder-metrics:test";

export async function startController(
  t: TestContext,
  namespaces: string[],
  options: {
    discoveryTtlMs?: number;
    resyncMs?: number;
    recheckMs?: number;
    kubeconfigPath?: string;
    allowedExporterImages?: string[];
  } = {},
): Promise<Controller> {
  const kubeconfig = new k8s.KubeConfig();
  if (options.kubeconfigPath) kubeconfig.loadFromFile(options.kubeconfigPath);
  else kubeconfig.loadFromDefault();
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
    discoveryTtlMs: options.discoveryTtlMs ?? 1000,
    resyncMs: options.resyncMs ?? 600_000,
    recheckMs: options.recheckMs ?? 1000,
  });
  await controller.start();
  t.after(() => controller.stop());
  return controller;
}

/** Write requests the controller made so far (apply, patch, create, delete, status). */
export async function writeCount(controller: Controller): Promise<number> {
  const metric = await controller.metrics.apiRequests.get();
  return metric.values
    .filter(
      (v) =>
        v.labels.verb !== "get" &&
        v.labels.verb !== "list" &&
        v.labels.verb !== "discover" &&
        v.labels.resource !== "Event",
    )
    .reduce((sum, v) => sum + v.value, 0);
}

/** Reconciles every CoderMetrics once more and waits until the queue is idle again. */
export async function resyncAndSettle(controller: Controller): Promise<void> {
  const before = controller.reconciled;
  controller.resync();
  await eventually("the resync to run", async () =>
    controller.reconciled > before && controller.idle ? true : undefined,
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
    if (now !== last || !controller.idle) {
      last = now;
      since = Date.now();
      return undefined;
    }
    return Date.now() - since >= quietMs ? true : undefined;
  });
}
