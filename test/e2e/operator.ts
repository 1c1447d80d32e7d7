// The Prometheus Operator, built from its Go module, run out of cluster
// against the test API server; and a real Prometheus (the Go build) running
// the very configuration the Operator generates for a Prometheus resource.
// The Operator would run that config in a StatefulSet Pod; there is no
// container runtime here, so the Pod stays pending (the process kubelet says
// why) and the config is taken from the Secret prometheus-<name> instead,
// with in-cluster service discovery pointed at a kubeconfig.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import * as k8s from "@kubernetes/client-node";
import { parse, stringify } from "yaml";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { freePort } from "../cluster/control-plane.ts";
import { ManagedProcess } from "../cluster/process.ts";
import { eventually } from "../support/kube.ts";
import { type RunningPrometheus, startPrometheus } from "../support/prometheus.ts";

const repoRoot = resolve(import.meta.dirname, "../..");

export const monitoringCrdPlurals = [
  "alertmanagerconfigs",
  "alertmanagers",
  "podmonitors",
  "probes",
  "prometheusagents",
  "prometheuses",
  "prometheusrules",
  "scrapeconfigs",
  "servicemonitors",
  "thanosrulers",
];

export function operatorBinary(): string {
  const dir = execFileSync(join(repoRoot, "test/tools/go-tools.sh"), ["prometheus-operator"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return join(dir, "operator");
}

/** The kubeconfig's server and client certificate as files (the Operator's out-of-cluster flags). */
function clientCertificateFiles(kubeconfigPath: string, dir: string): string[] {
  const config = new k8s.KubeConfig();
  config.loadFromFile(kubeconfigPath);
  const cluster = config.getCurrentCluster();
  const user = config.getCurrentUser();
  const file = (name: string, data: string | undefined, path: string | undefined): string => {
    if (path) return path;
    if (!data)
      throw new Error(
        `kubeconfig ${kubeconfigPath}: no ${name} (the Operator needs a client certificate)`,
      );
    const out = join(dir, name);
    writeFileSync(out, Buffer.from(data, "base64"), { mode: 0o600 });
    return out;
  };
  if (cluster === null || user === null)
    throw new Error(`kubeconfig ${kubeconfigPath}: no current context`);
  return [
    `--apiserver=${cluster.server}`,
    `--ca-file=${file("ca.crt", cluster.caData, cluster.caFile)}`,
    `--cert-file=${file("client.crt", user.certData, user.certFile)}`,
    `--key-file=${file("client.key", user.keyData, user.keyFile)}`,
  ];
}

export async function startPrometheusOperator(
  kubeconfigPath: string,
  dir: string,
): Promise<ManagedProcess> {
  mkdirSync(dir, { recursive: true });
  const operator = new ManagedProcess("prometheus-operator", join(dir, "prometheus-operator.log"));
  const port = await freePort();
  operator.start(operatorBinary(), [
    ...clientCertificateFiles(kubeconfigPath, dir),
    `--web.listen-address=127.0.0.1:${port}`,
    "--log-level=info",
  ]);
  await eventually(
    "the Prometheus Operator to be healthy",
    async () => {
      if (!operator.running) throw new Error(`prometheus-operator exited:\n${operator.logTail()}`);
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return r?.ok ? true : undefined;
    },
    { timeoutMs: 60_000 },
  );
  return operator;
}

/** A Prometheus resource configured the way kube-prometheus-stack's chart configures its own. */
export function kubePrometheusStackPrometheus(
  namespace: string,
  name: string,
): Record<string, unknown> {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "Prometheus",
    metadata: { name, namespace, labels: { release: "kube-prometheus-stack" } },
    spec: {
      replicas: 1,
      scrapeInterval: "5s",
      evaluationInterval: "30s",
      serviceDiscoveryRole: "EndpointSlice",
      serviceMonitorSelector: { matchLabels: { release: "kube-prometheus-stack" } },
      serviceMonitorNamespaceSelector: {},
      podMonitorSelector: { matchLabels: { release: "kube-prometheus-stack" } },
      podMonitorNamespaceSelector: {},
    },
  };
}

type Json = Record<string, unknown>;

/** Keys whose files exist only inside the Prometheus Pod (service-account token, mounted secrets). */
const inPodFileKeys = new Set([
  "bearer_token_file",
  "credentials_file",
  "ca_file",
  "cert_file",
  "key_file",
  "password_file",
]);

function stripInPodFiles(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) stripInPodFiles(item);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const object = node as Json;
  for (const [key, value] of Object.entries(object)) {
    if (inPodFileKeys.has(key) && typeof value === "string" && value.startsWith("/"))
      delete object[key];
    else stripInPodFiles(value);
  }
  for (const key of ["authorization", "tls_config"]) {
    const value = object[key];
    if (value && typeof value === "object" && Object.keys(value).length === 0) delete object[key];
  }
}

/** $(VAR) in every string, as the config reloader expands the Pod's environment. */
function expandPodEnv(node: unknown, env: Record<string, string>): unknown {
  if (typeof node === "string")
    return node.replace(/\$\(([A-Z_][A-Z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
  if (Array.isArray(node)) return node.map((item) => expandPodEnv(item, env));
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, expandPodEnv(v, env)]));
}

/**
 * The Operator's generated config, made runnable out of cluster: service
 * discovery through `kubeconfigPath`, no files that exist only in the Pod, no
 * rules or Alertmanagers, and $(POD_NAME) / $(SHARD) expanded as the config
 * reloader would for shard 0 (left as is, the sharding rule drops every target).
 */
export function outOfClusterConfig(generated: Json, kubeconfigPath: string, podName: string): Json {
  const config = expandPodEnv(generated, { POD_NAME: podName, SHARD: "0" }) as Json;
  delete config.rule_files;
  delete config.alerting;
  for (const job of (config.scrape_configs as Json[] | undefined) ?? []) {
    stripInPodFiles(job);
    for (const sd of (job.kubernetes_sd_configs as Json[] | undefined) ?? []) {
      sd.kubeconfig_file = kubeconfigPath;
      delete sd.api_server;
    }
  }
  return config;
}

export interface OperatedPrometheus extends RunningPrometheus {
  /** The config currently loaded (after outOfClusterConfig). */
  readonly config: Json;
  /** How many times the generated config changed and was reloaded. */
  readonly reloads: number;
  /** Waits until the loaded config has a scrape job whose name contains `text`. */
  waitForJob(text: string, timeoutMs?: number): Promise<void>;
}

async function generatedConfig(
  config: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<Json | undefined> {
  const r = await kubeFetch(
    config,
    "GET",
    `/api/v1/namespaces/${namespace}/secrets/prometheus-${name}`,
  );
  if (r.status !== 200) return undefined;
  const data = (r.body as { data?: Record<string, string> }).data?.["prometheus.yaml.gz"];
  if (!data) return undefined;
  return parse(gunzipSync(Buffer.from(data, "base64")).toString("utf8")) as Json;
}

/** Runs Prometheus with the Operator's config for Prometheus namespace/name, following its changes. */
export async function startOperatedPrometheus(options: {
  kubeconfigPath: string;
  namespace: string;
  name: string;
  pollMs?: number;
}): Promise<OperatedPrometheus> {
  const kube = new k8s.KubeConfig();
  kube.loadFromFile(options.kubeconfigPath);
  const podName = `prometheus-${options.name}-0`;
  const first = await eventually(
    `the Operator to write Secret ${options.namespace}/prometheus-${options.name}`,
    () => generatedConfig(kube, options.namespace, options.name),
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  let source = JSON.stringify(first);
  let config = outOfClusterConfig(first, options.kubeconfigPath, podName);
  let reloads = 0;
  const prometheus = await startPrometheus(config);
  const configPath = join(prometheus.dir, "prometheus.yml");
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> = Promise.resolve();
  const poll = async () => {
    const generated = await generatedConfig(kube, options.namespace, options.name).catch(
      () => undefined,
    );
    if (generated === undefined || JSON.stringify(generated) === source) return;
    source = JSON.stringify(generated);
    config = outOfClusterConfig(generated, options.kubeconfigPath, podName);
    writeFileSync(configPath, stringify(config));
    // What the config reloader sidecar does after the Secret changes.
    const r = await fetch(`${prometheus.url}/-/reload`, { method: "POST" }).catch(() => undefined);
    if (r?.ok) reloads++;
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      polling = poll().finally(schedule);
    }, options.pollMs ?? 1000);
  };
  schedule();
  return {
    ...prometheus,
    get config() {
      return config;
    },
    get reloads() {
      return reloads;
    },
    async waitForJob(text, timeoutMs = 60_000) {
      await eventually(
        `a scrape job containing "${text}" in the Operator's config`,
        async () => {
          const jobs = (config.scrape_configs as Json[] | undefined) ?? [];
          return jobs.some((j) => String(j.job_name).includes(text)) ? true : undefined;
        },
        { timeoutMs },
      );
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await polling;
      await prometheus.stop();
    },
  };
}
