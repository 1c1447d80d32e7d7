// node --test global setup: one control plane for the whole run, shared by
// every test file through KUBECONFIG (children inherit the environment).
// USE_EXISTING_CLUSTER=true runs the suites against the cluster KUBECONFIG
// (or ~/.kube/config) points at instead — a kind, k3d or EKS cluster.
import { type ControlPlane, startControlPlane } from "./control-plane.ts";

let controlPlane: ControlPlane | undefined;

export async function globalSetup(): Promise<void> {
  if (process.env.USE_EXISTING_CLUSTER === "true") {
    process.stderr.write(
      `integration: using the existing cluster from ${process.env.KUBECONFIG ?? "~/.kube/config"}\n`,
    );
    return;
  }
  const started = Date.now();
  controlPlane = await startControlPlane({
    controllerManager: process.env.TEST_CONTROLLER_MANAGER === "true",
    keepDir: process.env.TEST_KEEP_CLUSTER_DIR === "true",
  });
  process.env.KUBECONFIG = controlPlane.kubeconfigPath;
  process.env.TEST_CLUSTER_DIR = controlPlane.dir;
  process.stderr.write(
    `integration: kube-apiserver ${controlPlane.server} ready in ${Date.now() - started} ms (${controlPlane.dir})\n`,
  );
}

export async function globalTeardown(): Promise<void> {
  await controlPlane?.stop();
}
