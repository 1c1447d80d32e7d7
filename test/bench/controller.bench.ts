// make bench-controller: N CoderMetrics in N namespaces against a real
// kube-apiserver (its own, on loopback). Prints time to converge, CR→Ready
// latency p50/p99, API requests per steady-state resync (writes must be 0),
// and the controller's RSS and CPU. Figures, not assertions.
//   node test/bench/controller.bench.ts [--crs 500]
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { freePort, startControlPlane } from "../cluster/control-plane.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../support/crds.ts";
import { testClients } from "../support/kube.ts";
import { createCoderDeployment } from "../support/coder-deployment.ts";

const { values } = parseArgs({
  options: {
    crs: { type: "string", default: "500" },
    concurrency: { type: "string", default: "20" },
  },
});
const count = Number(values.crs);
const concurrency = Number(values.concurrency);
const cli = resolve(import.meta.dirname, "../../controller/cli.ts");

async function inBatches<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += concurrency)
    await Promise.all(items.slice(i, i + concurrency).map(fn));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function sum(
  metrics: Map<string, number>,
  prefix: string,
  filter: (series: string) => boolean = () => true,
): number {
  let total = 0;
  for (const [k, v] of metrics) if (k.startsWith(prefix) && filter(k)) total += v;
  return total;
}

const isWrite = (s: string) =>
  !/verb="(get|list|watch|discover)"/.test(s) && !/resource="Event"/.test(s);

const log = (msg: string) => process.stderr.write(`[bench-controller] ${msg}\n`);
log(`starting a control plane for ${count} CRs in ${count} namespaces`);
const controlPlane = await startControlPlane();
let controller: ChildProcess | undefined;
try {
  const clients = testClients(controlPlane.kubeconfigPath);
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients, ["servicemonitors", "podmonitors", "prometheuses"]);
  const namespaces = Array.from({ length: count }, (_, i) => `bench-${String(i).padStart(4, "0")}`);
  const labels = { "app.kubernetes.io/name": "coder" };
  let began = Date.now();
  await inBatches(namespaces, async (namespace) => {
    await clients.core.createNamespace({ body: { metadata: { name: namespace } } });
    await createCoderDeployment(clients, namespace, { labels });
  });
  log(`created ${count} namespaces + Deployments in ${Date.now() - began} ms`);

  const port = await freePort();
  controller = spawn(
    process.execPath,
    [
      cli,
      "controller",
      "--leader-elect=false",
      `--metrics-address=127.0.0.1:${port}`,
      "--resync=15s",
      "--workers=4",
      "--log-level=warn",
    ],
    {
      env: { ...process.env, KUBECONFIG: controlPlane.kubeconfigPath },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  for (let i = 0; i < 100; i++) {
    if (
      await scrape(port).then(
        () => true,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 100));
  }

  const created = new Map<string, number>();
  const ready = new Map<string, number>();
  began = Date.now();
  const poll = setInterval(async () => {
    const list = await clients.objects
      .list<{
        apiVersion: string;
        kind: string;
        metadata: { namespace: string };
        status?: { conditions?: Array<{ type: string; status: string }> };
      }>("coder-metrics.io/v1alpha1", "CoderMetrics")
      .catch(() => ({ items: [] })); // a busy API server may time out: skip that round
    const now = Date.now();
    for (const cr of list.items) {
      const ns = cr.metadata.namespace;
      if (
        !ready.has(ns) &&
        cr.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      )
        ready.set(ns, now);
    }
  }, 200);
  await inBatches(namespaces, async (namespace) => {
    created.set(namespace, Date.now());
    await clients.objects.create({
      apiVersion: "coder-metrics.io/v1alpha1",
      kind: "CoderMetrics",
      metadata: { name: "coder", namespace },
      spec: {},
    });
  });
  const createdIn = Date.now() - began;
  while (ready.size < count && Date.now() - began < 20 * 60_000)
    await new Promise((r) => setTimeout(r, 200));
  clearInterval(poll);
  const converged = Date.now() - began;
  const latencies = namespaces
    .map((ns) => (ready.get(ns) ?? Number.NaN) - (created.get(ns) ?? 0))
    .sort((a, b) => a - b);

  const atConverge = await scrape(port);
  const writes = sum(atConverge, "coder_metrics_controller_api_requests_total", isWrite);
  const reconcilesBefore = sum(atConverge, "coder_metrics_controller_reconcile_total");
  // Wait for one full periodic resync of every CR.
  while (
    sum(await scrape(port), "coder_metrics_controller_reconcile_total") <
    reconcilesBefore + count
  ) {
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const afterResync = await scrape(port);
  const resyncWrites =
    sum(afterResync, "coder_metrics_controller_api_requests_total", isWrite) - writes;
  const resyncRequests =
    sum(afterResync, "coder_metrics_controller_api_requests_total") -
    sum(atConverge, "coder_metrics_controller_api_requests_total");
  const rss =
    afterResync.get("coder_metrics_controller_process_resident_memory_bytes") ?? Number.NaN;
  const cpu = afterResync.get("coder_metrics_controller_process_cpu_seconds_total") ?? Number.NaN;

  const rows: Array<[string, string]> = [
    ["CRs (one per namespace, each with a Coder Deployment)", String(count)],
    ["CRs created in", `${createdIn} ms`],
    ["all Ready after", `${converged} ms (${ready.size}/${count} Ready)`],
    ["CR → Ready p50", `${percentile(latencies, 50)} ms`],
    ["CR → Ready p99", `${percentile(latencies, 99)} ms`],
    ["writes to converge (apply/patch/status)", String(writes)],
    ["writes per steady-state resync", String(resyncWrites)],
    ["requests per steady-state resync (all verbs)", String(resyncRequests)],
    ["controller RSS after resync", `${(rss / 1024 / 1024).toFixed(1)} MiB`],
    ["controller CPU total", `${cpu.toFixed(1)} s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(
    `\ncoder-metrics controller benchmark (${new Date().toISOString()}, node ${process.version})`,
  );
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
} finally {
  controller?.kill("SIGTERM");
  await controlPlane.stop();
}
