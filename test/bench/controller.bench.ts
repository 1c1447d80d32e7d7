// make bench-controller: the controller as the chart installs it, against a
// real kube-apiserver (its own, on loopback), with N CoderMetrics in N
// namespaces. Figures, not assertions.
//   node test/bench/controller.bench.ts [--crs 500]
//   BENCH_VALUES='{"workers":4}' …   chart values to render the controller with
//
// What "as installed" means here:
//   - the controller runs as its own process with the args the chart's
//     Deployment passes with default values (helm template), its env over the
//     Dockerfile's, and dist/ (compiled) when that build is fresh; leader
//     election on, as the chart defaults;
//   - it authenticates as the chart's ServiceAccount (a TokenRequest token) with
//     the chart's RBAC, so it is a distinct user with exactly those rights;
//   - each namespace has a 0-replica Deployment shaped like Coder's chart's, and
//     a Prometheus selects ServiceMonitors in namespaces by label (so Discovered
//     needs namespace labels).
// Readiness is observed through one watch (an informer) on CoderMetrics, never
// by polling lists. Who loaded the API server is printed side by side: its own
// apiserver_request_total (by verb and resource), the requests the bench sent,
// and the controller's coder_metrics_controller_api_requests_total.
// The steady state is measured by restarting the controller once everything
// has converged: a fresh process reconciles every CoderMetrics (what the
// periodic --resync does, plus the lists that fill its caches).
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import type { CoderMetrics } from "../../controller/api/v1alpha1.ts";
import { createLogger } from "../../controller/common/log.ts";
import { ResilientInformer } from "../../controller/operator/informers.ts";
import { Kube } from "../../controller/operator/kube.ts";
import { KubeTransport } from "../../controller/operator/kube-config.ts";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { createControllerMetrics } from "../../controller/operator/metrics.ts";
import { freePort, startControlPlane } from "../cluster/control-plane.ts";
import { ManagedProcess } from "../cluster/process.ts";
import { createCoderDeployment } from "../support/coder-deployment.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../support/crds.ts";
import { find, renderChart } from "../support/helm.ts";
import { testClients } from "../support/kube.ts";

const { values } = parseArgs({
  options: {
    crs: { type: "string", default: "500" },
    concurrency: { type: "string", default: "20" },
  },
});
const count = Number(values.crs);
const concurrency = Number(values.concurrency);
const ROOT = resolve(import.meta.dirname, "../..");
const release = "bench";
const releaseNamespace = "coder-metrics";
const scrapedLabel = { "monitoring.example.com/scraped": "true" };

const log = (msg: string) => process.stderr.write(`[bench-controller] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inBatches<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += concurrency)
    await Promise.all(items.slice(i, i + concurrency).map(fn));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** dist/ when built after every controller source (as the image runs it); else the sources. */
function controllerEntry(): { script: string; label: string } {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((max, e) => {
      const path = join(dir, e.name);
      return Math.max(max, e.isDirectory() ? newest(path) : statSync(path).mtimeMs);
    }, 0);
  const dist = join(ROOT, "dist/controller/cli.js");
  try {
    if (statSync(dist).mtimeMs >= newest(join(ROOT, "controller")))
      return { script: dist, label: "dist/ (compiled, as in the image)" };
  } catch {
    // not built
  }
  return {
    script: join(ROOT, "controller/cli.ts"),
    label:
      "sources (dist/ is missing or stale: run `npm run build`; type stripping adds ~30 MB RSS)",
  };
}

// --- Prometheus text, with labels ---------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return out;
}

function total(samples: Sample[], name: string, filter: (s: Sample) => boolean = () => true) {
  return samples.filter((s) => s.name === name && filter(s)).reduce((sum, s) => sum + s.value, 0);
}

async function controllerMetrics(port: number): Promise<Sample[]> {
  return parseMetrics(await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()));
}

async function apiserverMetrics(config: k8s.KubeConfig): Promise<Sample[]> {
  const response = await kubeFetch(config, "GET", "/metrics");
  return parseMetrics(String(response.body));
}

// --- who sent what, keyed as the API server counts it: "VERB resource[/subresource]" ----------

const pluralOf: Record<string, string> = {
  CoderMetrics: "codermetrics",
  Deployment: "deployments",
  Service: "services",
  ConfigMap: "configmaps",
  ServiceMonitor: "servicemonitors",
  PodMonitor: "podmonitors",
  Prometheus: "prometheuses",
  PrometheusAgent: "prometheusagents",
  Event: "events",
  Namespace: "namespaces",
  Lease: "leases",
};
const httpVerbOf: Record<string, string> = {
  apply: "APPLY",
  "apply-status": "APPLY",
  patch: "PATCH",
  get: "GET",
  list: "LIST",
  watch: "WATCH",
  create: "POST",
  update: "PUT",
  delete: "DELETE",
  discover: "GET",
};

/** coder_metrics_controller_api_requests_total, keyed like apiserver_request_total. */
function byRequest(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== "coder_metrics_controller_api_requests_total") continue;
    const verb = s.labels.verb ?? "";
    const resource =
      verb === "discover"
        ? "(discovery)"
        : `${pluralOf[s.labels.resource ?? ""] ?? s.labels.resource}${verb === "apply-status" ? "/status" : ""}`;
    const key = `${httpVerbOf[verb] ?? verb} ${resource}`;
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/** apiserver_request_total (or another of its per-request metrics) by "VERB resource[/subresource]". */
function apiserverByRequest(
  samples: Sample[],
  metric = "apiserver_request_total",
): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== metric || !s.labels.resource) continue;
    const sub = s.labels.subresource ? `/${s.labels.subresource}` : "";
    const key = `${s.labels.verb} ${s.labels.resource}${sub}`;
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

function minus(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of a) if (v - (b.get(k) ?? 0) !== 0) out.set(k, v - (b.get(k) ?? 0));
  return out;
}

const sumOf = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const isWrite = (key: string) => /^(APPLY|PATCH|POST|PUT|DELETE) /.test(key);

function requestTable(
  apiserver: Map<string, number>,
  bench: Map<string, number>,
  controller: Map<string, number>,
  /** apiserver_request_duration_seconds_sum: time the API server spent on them. */
  seconds: Map<string, number>,
): string[] {
  const keys = [...new Set([...apiserver.keys(), ...bench.keys(), ...controller.keys()])].sort(
    (a, b) => (apiserver.get(b) ?? 0) - (apiserver.get(a) ?? 0) || a.localeCompare(b),
  );
  const rows = keys.map((k) => {
    const a = apiserver.get(k) ?? 0;
    const b = bench.get(k) ?? 0;
    const c = controller.get(k) ?? 0;
    // Discovery is no resource request; the API server counts a watch when it ends.
    const other = k === "GET (discovery)" || k.startsWith("WATCH ") ? "" : String(a - b - c);
    const mean =
      a > 0 && !k.startsWith("WATCH ") ? (((seconds.get(k) ?? 0) / a) * 1000).toFixed(0) : "";
    return [k, String(a), String(b), String(c), other, mean];
  });
  const counted = (m: Map<string, number>) =>
    sumOf(new Map([...m].filter(([k]) => k !== "GET (discovery)" && !k.startsWith("WATCH "))));
  rows.push([
    "total (no discovery, no watches)",
    String(counted(apiserver)),
    String(counted(bench)),
    String(counted(controller)),
    String(counted(apiserver) - counted(bench) - counted(controller)),
    "",
  ]);
  const head = ["request", "API server", "bench", "controller", "other", "ms each"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    `    ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")}`;
  return [fmt(head), ...rows.map(fmt)];
}

// --- processes -----------------------------------------------------------------------------------

/** CPU seconds (user + system) and RSS/peak RSS (MiB) of a process, from /proc. */
function processStats(pid: number | undefined): { cpu: number; rss: number; peak: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1]);
    return { cpu, rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
  } catch {
    return { cpu: Number.NaN, rss: Number.NaN, peak: Number.NaN };
  }
}

log(`starting a control plane for ${count} CRs in ${count} namespaces`);
const controlPlane = await startControlPlane();
const entry = controllerEntry();
let controller: ManagedProcess | undefined;
let observer: ResilientInformer<CoderMetrics & k8s.KubernetesObject> | undefined;
try {
  const clients = testClients(controlPlane.kubeconfigPath);
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients, ["servicemonitors", "podmonitors", "prometheuses"]);

  // The chart with default values: its ServiceAccount and RBAC, and its controller's args.
  const chartValues = JSON.parse(process.env.BENCH_VALUES ?? "{}") as Record<string, unknown>;
  const chart = renderChart({ release, namespace: releaseNamespace, values: chartValues });
  await clients.core.createNamespace({ body: { metadata: { name: releaseNamespace } } });
  for (const kind of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"])
    for (const object of find(chart, kind)) await clients.objects.create(object);
  const deployment = find(chart, "Deployment")[0];
  const container = deployment?.spec.template.spec.containers.find(
    (c: { name: string }) => c.name === "controller",
  ) as { args: string[]; env?: Array<{ name: string; value?: string }> } | undefined;
  if (container === undefined) throw new Error("no controller container in the chart");
  const port = await freePort();
  // The image's environment (Dockerfile ENV), then the container's plain env values.
  const env: Record<string, string> = {};
  for (const m of readFileSync(join(ROOT, "Dockerfile"), "utf8").matchAll(/^ENV (\w+)=(.*)$/gm))
    env[m[1]!] = m[2]!;
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  const args = container.args.map((a) =>
    a.startsWith("--metrics-address=") ? `--metrics-address=127.0.0.1:${port}` : a,
  );
  const serviceAccount = find(chart, "ServiceAccount")[0]?.metadata.name ?? "";
  const token = await kubeFetch(
    clients.config,
    "POST",
    `/api/v1/namespaces/${releaseNamespace}/serviceaccounts/${serviceAccount}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 86_400 },
      },
    },
  );
  if (token.status >= 300) throw new Error(`TokenRequest: HTTP ${token.status}`);
  const cluster = clients.config.getCurrentCluster()!;
  const controllerKubeconfig = join(controlPlane.dir, "controller.kubeconfig");
  writeFileSync(
    controllerKubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "bench",
          cluster: { server: cluster.server, "certificate-authority-data": cluster.caData },
        },
      ],
      users: [
        {
          name: serviceAccount,
          user: { token: (token.body as { status: { token: string } }).status.token },
        },
      ],
      contexts: [{ name: "sa", context: { cluster: "bench", user: serviceAccount } }],
      "current-context": "sa",
    }),
    { mode: 0o600 },
  );

  // A Prometheus that selects every ServiceMonitor in namespaces labelled scraped=true.
  await clients.core.createNamespace({ body: { metadata: { name: "monitoring" } } });
  await clients.objects.create({
    apiVersion: "monitoring.coreos.com/v1",
    kind: "Prometheus",
    metadata: { name: "k8s", namespace: "monitoring" },
    spec: {
      serviceMonitorSelector: {},
      serviceMonitorNamespaceSelector: { matchLabels: scrapedLabel },
    },
  } as k8s.KubernetesObject);

  const namespaces = Array.from({ length: count }, (_, i) => `bench-${String(i).padStart(4, "0")}`);
  let began = Date.now();
  await inBatches(namespaces, async (namespace) => {
    await clients.core.createNamespace({
      body: { metadata: { name: namespace, labels: scrapedLabel } },
    });
    await createCoderDeployment(clients, namespace, { replicas: 0 });
  });
  log(`created ${count} namespaces + Deployments in ${Date.now() - began} ms`);

  const startController = async (name: string): Promise<ManagedProcess> => {
    const proc = new ManagedProcess(name, join(controlPlane.dir, `${name}.log`));
    proc.start(process.execPath, [entry.script, ...args], {
      ...process.env,
      ...env,
      KUBECONFIG: controllerKubeconfig,
      POD_NAME: `${release}-coder-metrics-${name}`,
      POD_NAMESPACE: releaseNamespace,
    });
    for (let i = 0; ; i++) {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (
        ready &&
        (await controllerMetrics(port).then(
          (m) => total(m, "coder_metrics_controller_leader") === 1,
        ))
      )
        break;
      if (!proc.running || i > 600)
        throw new Error(`${name} did not become ready:\n${proc.logTail()}`);
      await sleep(100);
    }
    return proc;
  };
  controller = await startController("controller");
  log(
    `controller (${entry.label}) leads and has synced: ${args.slice(1).join(" ")} (NODE_OPTIONS=${env.NODE_OPTIONS ?? ""})`,
  );

  // The observer: one list, then one watch on every CoderMetrics.
  const created = new Map<string, number>();
  const ready = new Map<string, number>();
  const discovered = new Set<string>();
  const benchMetrics = createControllerMetrics();
  const benchKube = new Kube(
    new KubeTransport(clients.config, { timeoutMs: 60_000 }),
    benchMetrics,
  );
  observer = new ResilientInformer<CoderMetrics & k8s.KubernetesObject>(
    benchKube,
    { apiVersion: "coder-metrics.io/v1alpha1", kind: "CoderMetrics", plural: "codermetrics" },
    { log: createLogger({ level: "error" }) },
    (_event, cr) => {
      const ns = cr.metadata.namespace;
      const conditions = cr.status?.conditions ?? [];
      if (!ready.has(ns) && conditions.some((c) => c.type === "Ready" && c.status === "True"))
        ready.set(ns, Date.now());
      if (conditions.some((c) => c.type === "Discovered" && c.status === "True"))
        discovered.add(ns);
    },
  );
  observer.start();
  await observer.waitForSync({ timeoutMs: 60_000 });

  const benchRequests = async () => {
    const m = byRequest(parseMetrics(await benchMetrics.registry.metrics()));
    m.set("POST codermetrics", created.size);
    return m;
  };
  const apiserverSamples0 = await apiserverMetrics(clients.config);
  const apiserver0 = apiserverByRequest(apiserverSamples0);
  const bench0 = await benchRequests();
  const controller0 = await controllerMetrics(port);
  const apiserverProc0 = processStats(controlPlane.apiserver.pid);
  const etcdProc0 = processStats(controlPlane.etcd.pid);
  const load0 = loadavg()[0]!;

  began = Date.now();
  await inBatches(namespaces, async (namespace) => {
    created.set(namespace, Date.now());
    await clients.objects.create({
      apiVersion: "coder-metrics.io/v1alpha1",
      kind: "CoderMetrics",
      metadata: { name: "coder", namespace },
      spec: {},
    } as k8s.KubernetesObject);
  });
  const createdIn = Date.now() - began;
  while (ready.size < count && Date.now() - began < 20 * 60_000) await sleep(50);
  const allReady = Math.max(...ready.values()) - began;
  const controllerReady = await controllerMetrics(port);

  // Converged: nothing queued, no worker busy, no request (the Lease's renewals aside) for 3 s.
  const busy = (m: Sample[]) =>
    total(m, "coder_metrics_controller_workqueue_depth") +
    total(m, "coder_metrics_controller_active_workers");
  const work = (m: Sample[]) =>
    total(m, "coder_metrics_controller_api_requests_total", (s) => s.labels.resource !== "Lease");
  let quietSince = Date.now();
  let last = -1;
  for (;;) {
    const m = await controllerMetrics(port);
    if (busy(m) > 0 || work(m) !== last) {
      last = work(m);
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= 3000) break;
    await sleep(250);
  }
  const settledAt = quietSince - began;
  const controller1 = await controllerMetrics(port);
  const apiserverSamples1 = await apiserverMetrics(clients.config);
  const apiserver1 = apiserverByRequest(apiserverSamples1);
  const apiserverSeconds = minus(
    apiserverByRequest(apiserverSamples1, "apiserver_request_duration_seconds_sum"),
    apiserverByRequest(apiserverSamples0, "apiserver_request_duration_seconds_sum"),
  );
  const bench1 = await benchRequests();
  const apiserverProc1 = processStats(controlPlane.apiserver.pid);
  const etcdProc1 = processStats(controlPlane.etcd.pid);
  const controllerProc1 = processStats(controller.pid);
  const load1 = loadavg()[0]!;

  const latencies = namespaces
    .map((ns) => (ready.get(ns) ?? Number.NaN) - (created.get(ns) ?? 0))
    .sort((a, b) => a - b);
  const converge = minus(byRequest(controller1), byRequest(controller0));
  const convergeAtReady = minus(byRequest(controllerReady), byRequest(controller0));
  const apiserverConverge = minus(apiserver1, apiserver0);
  const benchConverge = minus(bench1, bench0);
  const reconciles = (m: Sample[]) => total(m, "coder_metrics_controller_reconcile_total");
  const events = (m: Map<string, number>) => m.get("POST events") ?? 0;
  const controllerTotal = (m: Map<string, number>) => sumOf(m);
  const writes = (m: Map<string, number>) =>
    [...m]
      .filter(([k]) => isWrite(k) && !k.endsWith(" events") && !k.endsWith(" leases"))
      .reduce((s, [, v]) => s + v, 0);
  const heap = (m: Sample[]) => {
    const mib = (name: string) =>
      (total(m, `coder_metrics_controller_nodejs_${name}`) / 1048576).toFixed(1);
    return `${mib("heap_size_used_bytes")} / ${mib("heap_size_total_bytes")}, ${mib("external_memory_bytes")} MiB`;
  };
  const controllerLog = readFileSync(controller.logPath, "utf8").split("\n");
  const problems = controllerLog.filter((l) => /"level":"(warn|error)"/.test(l));

  // The steady state: a new process reconciles everything that has converged.
  log("restarting the controller: every CoderMetrics is reconciled again from fresh caches");
  await controller.stop();
  const apiserver2 = apiserverByRequest(await apiserverMetrics(clients.config));
  const restartBegan = Date.now();
  controller = await startController("controller-restarted");
  let m3 = await controllerMetrics(port);
  while (reconciles(m3) < count || busy(m3) > 0) {
    await sleep(250);
    m3 = await controllerMetrics(port);
  }
  const resyncMs = Date.now() - restartBegan;
  await sleep(1000);
  m3 = await controllerMetrics(port);
  const apiserver3 = apiserverByRequest(await apiserverMetrics(clients.config));
  const resync = byRequest(m3);
  const controllerProc3 = processStats(controller.pid);

  const rows: Array<[string, string]> = [
    ["CRs (one per namespace, each with a 0-replica Coder Deployment)", String(count)],
    [
      "controller",
      `${entry.label}; args and env as the chart renders them${process.env.BENCH_VALUES ? ` with ${process.env.BENCH_VALUES}` : " (default values)"}`,
    ],
    ["controller flags", args.slice(1).join(" ")],
    ["controller NODE_OPTIONS", env.NODE_OPTIONS ?? ""],
    [
      "load average (1 min) before / after",
      `${load0.toFixed(1)} / ${load1.toFixed(1)} on ${availableParallelism()} cores`,
    ],
    ["CRs created in", `${createdIn} ms`],
    [
      "all Ready after",
      `${allReady} ms (${ready.size}/${count} Ready; ${discovered.size} Discovered)`,
    ],
    [
      "CR → Ready p50 / p90 / p99",
      `${percentile(latencies, 50)} / ${percentile(latencies, 90)} / ${percentile(latencies, 99)} ms`,
    ],
    ["converged (queue empty, no request for 3 s) after", `${settledAt} ms`],
    ["reconciles to converge", String(reconciles(controller1) - reconciles(controller0))],
    [
      "controller requests to converge (all verbs, Events and Lease included)",
      `${controllerTotal(converge)} = ${(controllerTotal(converge) / count).toFixed(2)} per CR (${controllerTotal(convergeAtReady)} when all were Ready)`,
    ],
    [
      "  of which writes (apply/patch/create/delete, not Events or Lease)",
      `${writes(converge)} = ${(writes(converge) / count).toFixed(2)} per CR`,
    ],
    ["  of which Events", `${events(converge)} = ${(events(converge) / count).toFixed(2)} per CR`],
    [
      "API server requests meanwhile, minus the bench's",
      `${sumOf(apiserverConverge) - sumOf(benchConverge)} = ${((sumOf(apiserverConverge) - sumOf(benchConverge)) / count).toFixed(2)} per CR`,
    ],
    [
      "API server / etcd CPU while converging",
      `${(apiserverProc1.cpu - apiserverProc0.cpu).toFixed(1)} s / ${(etcdProc1.cpu - etcdProc0.cpu).toFixed(1)} s; API server RSS ${apiserverProc1.rss.toFixed(0)} MiB`,
    ],
    [
      "controller CPU / RSS / peak RSS when converged",
      `${controllerProc1.cpu.toFixed(1)} s / ${controllerProc1.rss.toFixed(1)} MiB / ${controllerProc1.peak.toFixed(1)} MiB`,
    ],
    ["controller V8 heap used / total, external when converged", heap(controller1)],
    ["controller warnings/errors logged", String(problems.length)],
    ["restart: every CR reconciled again after", `${resyncMs} ms (${reconciles(m3)} reconciles)`],
    ["restart: writes (must be 0)", String(writes(resync))],
    ["restart: Events", String(events(resync))],
    [
      "restart: requests (all verbs)",
      `${controllerTotal(resync)}: ${[...resync].map(([k, v]) => `${k} ${v}`).join(", ")}`,
    ],
    ["restart: controller V8 heap used / total, external", heap(m3)],
    ["restart: API server requests meanwhile", String(sumOf(minus(apiserver3, apiserver2)))],
    [
      "restart: controller CPU / RSS / peak RSS",
      `${controllerProc3.cpu.toFixed(1)} s / ${controllerProc3.rss.toFixed(1)} MiB / ${controllerProc3.peak.toFixed(1)} MiB`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(
    `\ncoder-metrics controller benchmark (${new Date().toISOString()}, node ${process.version})`,
  );
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(
    "\n  requests from the first CR created until converged, as each party counts them\n" +
      "  (API server: apiserver_request_total; bench: what it sent; controller: its\n" +
      "  coder_metrics_controller_api_requests_total; other: the rest — the API server's own loopback\n" +
      "  clients, requests on the window's edges;\n" +
      "  the API server counts a watch when it ends, the controller when it starts;\n" +
      "  ms each: the API server's mean time per request, apiserver_request_duration_seconds)",
  );
  for (const line of requestTable(apiserverConverge, benchConverge, converge, apiserverSeconds))
    console.log(line);
  if (problems.length > 0) {
    console.log("\n  controller warnings/errors (first 5):");
    for (const p of problems.slice(0, 5)) console.log(`    ${p.slice(0, 400)}`);
  }
} finally {
  await observer?.stop();
  await controller?.stop();
  await controlPlane.stop();
}
