// node --test global setup of the e2e suite: one local stack (control plane,
// process kubelet, Prometheus Operator) for the whole run, shared through the
// environment (KUBECONFIG, E2E_LOCAL_STACK). With USE_EXISTING_CLUSTER=true
// nothing starts: the suite uses KUBECONFIG's cluster, its kubelets and its
// Prometheus Operator.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LocalStack, startLocalStack } from "./stack.ts";

let stack: LocalStack | undefined;
let dir: string | undefined;

export async function globalSetup(): Promise<void> {
  if (process.env.USE_EXISTING_CLUSTER === "true") {
    process.stderr.write(
      `e2e: using the existing cluster from ${process.env.KUBECONFIG ?? "~/.kube/config"}\n`,
    );
    return;
  }
  const started = Date.now();
  dir = mkdtempSync(join(tmpdir(), "coder-metrics-e2e-"));
  stack = await startLocalStack({ dir, keepDir: process.env.TEST_KEEP_CLUSTER_DIR === "true" });
  process.env.KUBECONFIG = stack.kubeconfigPath;
  process.env.E2E_LOCAL_STACK = dir;
  process.stderr.write(
    `e2e: local stack ready in ${Date.now() - started} ms (logs under ${dir})\n`,
  );
}

export async function globalTeardown(): Promise<void> {
  await stack?.stop();
  if (dir && process.env.TEST_KEEP_CLUSTER_DIR !== "true")
    rmSync(dir, { recursive: true, force: true });
}
