// What the e2e tests share: the controller installed with the chart, Coder
// Deployments shaped like Coder's Helm chart renders them, CoderMetrics
// objects, and reading their status.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import type { Condition } from "../../controller/api/v1alpha1.ts";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import {
  helmBinary,
  type PackagedChart,
  packageChart,
  repoRoot,
  unstampedServer,
} from "../support/helm.ts";
import { eventually, type TestClients } from "../support/kube.ts";

/** Labels Coder's Helm chart puts on its Deployment and pods. */
export function coderMetrics(namespace: string, spec: Record<string, unknown>, name = "coder") {
  return {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name, namespace },
    spec,
  };
}

export interface CrStatus {
  conditions?: Condition[];
  monitor?: { kind: string; name: string };
}

export async function crStatus(
  clients: TestClients,
  namespace: string,
  name: string,
): Promise<CrStatus> {
  const r = await kubeFetch(
    clients.config,
    "GET",
    `/apis/coder-metrics.io/v1alpha1/namespaces/${namespace}/codermetrics/${name}`,
  );
  if (r.status !== 200) throw new Error(`CoderMetrics ${namespace}/${name}: HTTP ${r.status}`);
  return ((r.body as { status?: CrStatus }).status ?? {}) as CrStatus;
}

/** Waits until the CR's condition `type` has `status`; returns it. */
export async function waitForCondition(
  clients: TestClients,
  namespace: string,
  name: string,
  type: string,
  status: "True" | "False",
  timeoutMs = 90_000,
): Promise<Condition> {
  let last: Condition | undefined;
  try {
    return await eventually(
      `CoderMetrics ${namespace}/${name} condition ${type}=${status}`,
      async () => {
        last = (await crStatus(clients, namespace, name)).conditions?.find((c) => c.type === type);
        return last?.status === status ? last : undefined;
      },
      { timeoutMs, intervalMs: 500 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last: ${JSON.stringify(last)}`);
  }
}

export interface ControllerRelease {
  release: string;
  namespace: string;
  /** helm upgrade --reuse-values with `args` (--set …), waiting for the rollout. */
  upgrade(args: string[]): Promise<void>;
  uninstall(): Promise<void>;
}

/** `helm package` of the chart, for the cluster KUBECONFIG names (see packageChart). */
export async function packageForCluster(): Promise<PackagedChart> {
  const config = new k8s.KubeConfig();
  config.loadFromDefault();
  const version = (await kubeFetch(config, "GET", "/version")).body as { gitVersion?: string };
  return packageChart({ withoutKubeVersion: unstampedServer(version.gitVersion) });
}

let packaged: PackagedChart | undefined;

/**
 * The chart as users install it: the package global-setup.ts made for the run
 * (E2E_CHART_PACKAGE), else one made once per process and removed at its exit.
 */
export async function chartPackage(): Promise<string> {
  if (process.env.E2E_CHART_PACKAGE) return process.env.E2E_CHART_PACKAGE;
  if (packaged === undefined) {
    const made = await packageForCluster();
    packaged = made;
    process.once("exit", () => made.remove());
  }
  return packaged.path;
}

/** The image the chart runs; E2E_IMAGE=repo:tag overrides it (e.g. a build pushed for a real cluster). */
export function imageValues(): string[] {
  const image = process.env.E2E_IMAGE;
  if (!image) return [];
  const at = image.lastIndexOf(":");
  return ["--set", `image.repository=${image.slice(0, at)},image.tag=${image.slice(at + 1)}`];
}

/**
 * helm, without blocking the event loop (the process kubelet may share this
 * process, and it must run the controller Pod while helm --wait waits for it).
 */
export function helmAsync(
  args: string[],
  timeoutMs = 300_000,
): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(helmBinary(), args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, HELM_CACHE_HOME: join(repoRoot, ".cache/helm/cache") },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stderr });
    });
  });
}

/** helm install of the packaged chart, cluster-wide, waiting for the controller Pod to be ready. */
export async function installController(
  namespace: string,
  release = `cm-e2e-${randomBytes(2).toString("hex")}`,
  extraArgs: string[] = [],
): Promise<ControllerRelease> {
  const chart = await chartPackage();
  const args = [
    "install",
    release,
    chart,
    "--namespace",
    namespace,
    "--create-namespace",
    "--wait",
    "--timeout",
    "180s",
    ...imageValues(),
    ...extraArgs,
  ];
  const result = await helmAsync(args);
  if (result.status !== 0) {
    throw new Error(`helm ${args.join(" ")} exited ${result.status}:\n${result.stderr}`);
  }
  return {
    release,
    namespace,
    upgrade: async (extra) => {
      const upgrade = [
        "upgrade",
        release,
        chart,
        "--namespace",
        namespace,
        "--reuse-values",
        "--wait",
        "--timeout",
        "180s",
        ...extra,
      ];
      const r = await helmAsync(upgrade);
      if (r.status !== 0)
        throw new Error(`helm ${upgrade.join(" ")} exited ${r.status}:\n${r.stderr}`);
    },
    uninstall: async () => {
      await helmAsync(
        ["uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s"],
        90_000,
      );
      // helm --create-namespace made it; helm uninstall leaves it.
      const config = new k8s.KubeConfig();
      config.loadFromDefault();
      await kubeFetch(config, "DELETE", `/api/v1/namespaces/${namespace}`).catch(() => undefined);
    },
  };
}

/** Fetches a URL's body (for the exposition coderd and the exporter serve). */
export async function scrape(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new Error(`GET ${url}: HTTP ${r.status}`);
  return r.text();
}

/** Metric family names with at least one sample in exposition text. */
export function sampleNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (m) names.add(m[0]);
  }
  return names;
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Log tails of the local stack (process kubelet, container processes, Operator), for a failed test. */
export function stackDiagnostics(lines = 15): string {
  const dir = process.env.E2E_LOCAL_STACK;
  if (dir === undefined) return "";
  const parts = [
    `--- kubelet (${dir}/kubelet/kubelet.log)`,
    tail(join(dir, "kubelet/kubelet.log"), lines),
  ];
  const pods = join(dir, "kubelet/pods");
  for (const pod of existsSync(pods) ? readdirSync(pods) : []) {
    for (const file of readdirSync(join(pods, pod)).filter((f) => f.endsWith(".log"))) {
      parts.push(`--- ${pod}/${file}`, tail(join(pods, pod, file), lines));
    }
  }
  parts.push("--- prometheus-operator", tail(join(dir, "operator/prometheus-operator.log"), lines));
  return parts.join("\n");
}

/** Runs a test body; on failure, the error carries the stack's log tails. */
export function withDiagnostics<T>(body: (t: T) => Promise<void>): (t: T) => Promise<void> {
  return async (t) => {
    try {
      await body(t);
    } catch (err) {
      const diagnostics = stackDiagnostics();
      if (diagnostics && err instanceof Error) err.message += `\n\n${diagnostics}`;
      throw err;
    }
  };
}
