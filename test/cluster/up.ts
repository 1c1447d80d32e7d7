// Starts the local control plane and keeps it running until interrupted:
//   node test/cluster/up.ts [--controller-manager]
// Prints the kubeconfig path (export KUBECONFIG=… and use kubectl-like tools).
import { startControlPlane } from "./control-plane.ts";

const controlPlane = await startControlPlane({
  controllerManager: process.argv.includes("--controller-manager"),
  keepDir: true,
});
process.stdout.write(`${controlPlane.kubeconfigPath}\n`);
const stop = async () => {
  await controlPlane.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
