// Where the control-plane binaries come from: KUBEBUILDER_ASSETS when a user
// already has them, else the Go builds cached by test/tools/go-tools.sh;
// etcd from KUBEBUILDER_ASSETS or Debian's etcd-server on PATH.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const repoRoot = resolve(import.meta.dirname, "../..");

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
}

function onPath(name: string): string | undefined {
  try {
    return (
      execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

export function findBinaries(): ControlPlaneBinaries {
  const dir = execFileSync(join(repoRoot, "test/tools/go-tools.sh"), ["kube"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const assets = process.env.KUBEBUILDER_ASSETS;
  const etcd = assets && existsSync(join(assets, "etcd")) ? join(assets, "etcd") : onPath("etcd");
  if (etcd === undefined) {
    throw new Error(
      "etcd not found: run `make system-deps` (Debian etcd-server) or set KUBEBUILDER_ASSETS",
    );
  }
  const binaries = {
    etcd,
    kubeApiserver: join(dir, "kube-apiserver"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
  };
  for (const [name, path] of Object.entries(binaries)) {
    if (!existsSync(path)) throw new Error(`${name} not found at ${path}`);
  }
  return binaries;
}
