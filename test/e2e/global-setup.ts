// node --test global setup of the e2e suite: one local stack (control plane,
// process kubelet, Prometheus Operator) for the whole run, shared through the
// environment (KUBECONFIG, E2E_LOCAL_STACK), and the chart packaged once for
// every file (E2E_CHART_PACKAGE). With USE_EXISTING_CLUSTER=true
// nothing starts: the suite uses KUBECONFIG's cluster, its kubelets and its
// Prometheus Operator.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PackagedChart } from "../support/helm.ts";
import { type LocalStack, startLocalStack } from "./stack.ts";
import { packageForCluster } from "./support.ts";

let stack: LocalStack | undefined;
let dir: string | undefined;
let chart: PackagedChart | undefined;

export async function globalSetup(): Promise<void> {
  if (process.env.USE_EXISTING_CLUSTER === "true") {
    process.stderr.write(
      `e2e: using the existing cluster from ${process.env.KUBECONFIG ?? "~/.kube/config"}\n`,
    );
    await packageOnce();
    return;
  }
  const started = Date.now();
  dir = mkdtempSync(join(tmpdir(), "coder-metrics-e2e-"));
  stack = await startLocalStack({ dir, keepDir: process.env.TEST_KEEP_CLUSTER_DIR === "true" });
  process.env.KUBECONFIG = stack.kubeconfigPath;
  process.env.E2E_LOCAL_STACK = dir;
  // The label value on this run's containers; unset when coder-metrics runs from the sources.
  if (stack.kubelet.runId !== undefined) process.env.E2E_CONTAINER_RUN = stack.kubelet.runId;
  // Local image name → the id this run's containers run (see runtime.ts).
  if (stack.images !== undefined) process.env.E2E_IMAGE_PINS = JSON.stringify(stack.images);
  await packageOnce();
  process.stderr.write(
    `e2e: local stack ready in ${Date.now() - started} ms (logs under ${dir})\n`,
  );
}

/** `helm package`, once: what installController installs. */
async function packageOnce(): Promise<void> {
  chart = await packageForCluster();
  process.env.E2E_CHART_PACKAGE = chart.path;
}

export async function globalTeardown(): Promise<void> {
  chart?.remove();
  try {
    // Throws when podman still lists one of this run's containers afterwards.
    await stack?.stop();
  } finally {
    if (dir && process.env.TEST_KEEP_CLUSTER_DIR !== "true")
      rmSync(dir, { recursive: true, force: true });
  }
}
