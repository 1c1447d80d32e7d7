// Runs a real Prometheus (built from its Go module by test/tools/go-tools.sh:
// Debian's package lacks kubernetes_sd_configs) on loopback with a given
// config, and reads its HTTP API.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { freePort } from "../cluster/control-plane.ts";
import { ManagedProcess } from "../cluster/process.ts";
import { eventually } from "./kube.ts";

const repoRoot = resolve(import.meta.dirname, "../..");

export function prometheusBinary(name: "prometheus" | "promtool" = "prometheus"): string {
  const dir = execFileSync(join(repoRoot, "test/tools/go-tools.sh"), ["prometheus"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return join(dir, name);
}

/** `promtool check config` on a config object; throws with promtool's output when it is refused. */
export function promtoolCheckConfig(config: Record<string, unknown>): void {
  const dir = mkdtempSync(join(tmpdir(), "coder-metrics-promtool-"));
  try {
    const path = join(dir, "prometheus.yml");
    writeFileSync(path, stringify(config));
    execFileSync(prometheusBinary("promtool"), ["check", "config", "--syntax-only", path], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(
      `promtool check config refused it:\n${e.stdout ?? ""}${e.stderr ?? String(err)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface ActiveTarget {
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

export interface PrometheusApi {
  url: string;
  targets(): Promise<ActiveTarget[]>;
  /** An instant query; the result vector. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
}

/** Prometheus's HTTP API at `url`: one we started, or a real cluster's through a port-forward. */
export function prometheusApi(url: string): PrometheusApi {
  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  };
  return {
    url,
    targets: async () =>
      (await api<{ activeTargets: ActiveTarget[] }>("/api/v1/targets?state=active")).activeTargets,
    query: async (expr) =>
      (
        await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
          `/api/v1/query?query=${encodeURIComponent(expr)}`,
        )
      ).result,
  };
}

export interface RunningPrometheus extends PrometheusApi {
  dir: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startPrometheus(config: Record<string, unknown>): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), "coder-metrics-prometheus-"));
  const configPath = join(dir, "prometheus.yml");
  writeFileSync(configPath, stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const process = new ManagedProcess("prometheus", join(dir, "prometheus.log"));
  process.start(prometheusBinary(), [
    `--config.file=${configPath}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--web.enable-lifecycle",
  ]);
  await eventually(
    "Prometheus to be ready",
    async () => {
      if (!process.running) throw new Error(`prometheus exited:\n${process.logTail()}`);
      const r = await fetch(`${url}/-/ready`).catch(() => undefined);
      return r?.ok ? true : undefined;
    },
    { timeoutMs: 60_000 },
  );
  return {
    ...prometheusApi(url),
    dir,
    process,
    stop: async () => {
      await process.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
