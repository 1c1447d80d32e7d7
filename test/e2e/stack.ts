// The whole local stack the e2e suite and `make demo` share: a control plane
// with kube-controller-manager, the process kubelet, the monitoring CRDs and
// the Prometheus Operator. Against an existing cluster (USE_EXISTING_CLUSTER)
// none of it starts: the real kubelet and Operator are there.
import { join } from "node:path";
import type { ManagedProcess } from "../cluster/process.ts";
import { type ControlPlane, startControlPlane } from "../cluster/control-plane.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../support/crds.ts";
import { testClients } from "../support/kube.ts";
import { ProcessKubelet } from "./kubelet.ts";
import { monitoringCrdPlurals, startPrometheusOperator } from "./operator.ts";

export interface LocalStack {
  kubeconfigPath: string;
  controlPlane: ControlPlane;
  kubelet: ProcessKubelet;
  operator: ManagedProcess;
  stop(): Promise<void>;
}

/** Runs `step`, printing what it does and how long it took. */
export async function step<T>(
  what: string,
  run: () => Promise<T>,
  out = process.stderr,
): Promise<T> {
  const started = Date.now();
  out.write(`▸ ${what} …\n`);
  const value = await run();
  out.write(`  ✓ ${what} (${((Date.now() - started) / 1000).toFixed(1)}s)\n`);
  return value;
}

export async function startLocalStack(options: {
  dir: string;
  keepDir?: boolean;
  coderWorkspaces?: number;
}): Promise<LocalStack> {
  const controlPlane = await step(
    "control plane: etcd, kube-apiserver, kube-controller-manager",
    () => startControlPlane({ controllerManager: true, keepDir: options.keepDir ?? false }),
  );
  const stops: Array<() => Promise<void>> = [() => controlPlane.stop()];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const kubeconfigPath = controlPlane.kubeconfigPath;
    const clients = testClients(kubeconfigPath);
    await step("CRDs: CoderMetrics and monitoring.coreos.com", async () => {
      // Side by side: each waits for its CRD to be established.
      await Promise.all([
        installCoderMetricsCrd(clients),
        ...monitoringCrdPlurals.map((plural) => installMonitoringCrds(clients, [plural])),
      ]);
    });
    const kubelet = await step("process kubelet (Node process-kubelet)", () =>
      ProcessKubelet.start({
        kubeconfigPath,
        dir: join(options.dir, "kubelet"),
        ...(options.coderWorkspaces ? { coderWorkspaces: options.coderWorkspaces } : {}),
      }),
    );
    stops.splice(1, 0, () => kubelet.stop());
    const operator = await step("Prometheus Operator (out of cluster)", () =>
      startPrometheusOperator(kubeconfigPath, join(options.dir, "operator")),
    );
    stops.push(() => operator.stop());
    return { kubeconfigPath, controlPlane, kubelet, operator, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
