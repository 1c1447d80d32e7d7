// The whole local stack the e2e suite and `make demo` share: a control plane
// with kube-controller-manager, the process kubelet, the monitoring CRDs and
// the Prometheus Operator. Against an existing cluster (USE_EXISTING_CLUSTER)
// none of it starts: the real kubelet and Operator are there.
import { join } from "node:path";
import type { ManagedProcess } from "../cluster/process.ts";
import { type ControlPlane, startControlPlane } from "../cluster/control-plane.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../support/crds.ts";
import { testClients } from "../support/kube.ts";
import { type ContainerRuntimeOptions, ProcessKubelet } from "./kubelet.ts";
import { monitoringCrdPlurals, startPrometheusOperator } from "./operator.ts";
import { containerRuntime } from "./runtime.ts";

export interface LocalStack {
  kubeconfigPath: string;
  controlPlane: ControlPlane;
  kubelet: ProcessKubelet;
  operator: ManagedProcess;
  /** With coder-metrics from the image: local image name → the id this run uses. */
  images: Record<string, string> | undefined;
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
  /** The value of the label on this run's containers (default: random). */
  runId?: string;
}): Promise<LocalStack> {
  // Before anything starts: a missing image fails fast.
  const runtime = await containerRuntime();
  const containers: ContainerRuntimeOptions | undefined =
    runtime && options.runId ? { ...runtime, runId: options.runId } : runtime;
  const controlPlane = await step(
    "control plane: etcd, kube-apiserver, kube-controller-manager",
    () => startControlPlane({ controllerManager: true, keepDir: options.keepDir ?? false }),
  );
  const stops: Array<() => Promise<void>> = [() => controlPlane.stop()];
  // Every step runs; the first failure (e.g. containers left behind) is thrown at the end.
  const stop = async () => {
    const errors: unknown[] = [];
    for (const s of stops.reverse()) await s().catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw errors[0];
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
    const kubelet = await step(
      `process kubelet (Node process-kubelet; coder-metrics ${containers ? "from the image, with podman" : "from the sources"})`,
      () =>
        ProcessKubelet.start({
          kubeconfigPath,
          dir: join(options.dir, "kubelet"),
          ...(options.coderWorkspaces ? { coderWorkspaces: options.coderWorkspaces } : {}),
          ...(containers ? { containers } : {}),
        }),
    );
    stops.splice(1, 0, () => kubelet.stop());
    const operator = await step("Prometheus Operator (out of cluster)", () =>
      startPrometheusOperator(kubeconfigPath, join(options.dir, "operator")),
    );
    stops.push(() => operator.stop());
    return { kubeconfigPath, controlPlane, kubelet, operator, images: containers?.pinned, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
