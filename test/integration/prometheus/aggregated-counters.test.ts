// Aggregated counters as a real Prometheus sees them. Workspaces start, stop,
// come back and reset their counters in the Coder stand-in, while Prometheus
// scrapes two exporters: one with the per_template preset (counters summed as
// running totals), one with the same aggregation as a per-scrape sum
// (counter_mode: stateless). Over the whole run, the running total has no
// reset and its increase() is that of a reference counter carrying the true
// total in the same scrapes; the per-scrape sum shows the false resets that
// made rate() and increase() jump.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { PER_TEMPLATE_REMOVED_LABELS } from "../../../controller/coder/catalog.ts";
import { silentLogger } from "../../../controller/common/log.ts";
import { type RunningExporter, startExporter } from "../../../controller/exporter/main.ts";
import { type CoderStandin, startCoderStandin } from "../../support/coder-standin.ts";
import { eventually } from "../../support/kube.ts";
import { type RunningPrometheus, startPrometheus } from "../../support/prometheus.ts";

interface Workspace {
  template: string;
  /** agent_scripts_executed_total */
  scripts: number;
  /** Observations of coderd_agents_first_connection_seconds (0.5 s each, all ≤ 1). */
  connections: number;
}

// Each phase is what coderd serves for a while; Prometheus scrapes each one at least once.
const PHASES: Record<string, Workspace>[] = [
  {
    a: { template: "t", scripts: 5, connections: 3 },
    b: { template: "t", scripts: 7, connections: 6 },
    x: { template: "u", scripts: 2, connections: 1 },
  },
  {
    a: { template: "t", scripts: 6, connections: 4 },
    b: { template: "t", scripts: 7, connections: 6 },
    x: { template: "u", scripts: 3, connections: 2 },
  },
  // b stops.
  {
    a: { template: "t", scripts: 6, connections: 4 },
    x: { template: "u", scripts: 3, connections: 2 },
  },
  // c starts; x stops, and with it every series of template u.
  {
    a: { template: "t", scripts: 8, connections: 5 },
    c: { template: "t", scripts: 2, connections: 2 },
  },
  // b is back, counting from 0 again; y starts in template u.
  {
    a: { template: "t", scripts: 8, connections: 5 },
    b: { template: "t", scripts: 1, connections: 1 },
    c: { template: "t", scripts: 3, connections: 2 },
    y: { template: "u", scripts: 4, connections: 3 },
  },
  // a's agent restarted: its counters reset.
  {
    a: { template: "t", scripts: 2, connections: 1 },
    b: { template: "t", scripts: 1, connections: 1 },
    c: { template: "t", scripts: 5, connections: 4 },
    y: { template: "u", scripts: 4, connections: 3 },
  },
];

/** The true running total of template t's scripts after each phase: the inputs' increases. */
function trueTotals(): number[] {
  const last = new Map<string, number>();
  let total = 0;
  return PHASES.map((phase) => {
    for (const [name, w] of Object.entries(phase)) {
      if (w.template !== "t") continue;
      const prev = last.get(name);
      total += prev === undefined || w.scripts < prev ? w.scripts : w.scripts - prev;
      last.set(name, w.scripts);
    }
    return total;
  });
}

/** coderd's payload for a phase, plus a phase marker and the reference counter. */
function payload(k: number, reference: number): string {
  const lines = [
    "# HELP agent_scripts_executed_total Total number of scripts executed by the Coder agent.",
    "# TYPE agent_scripts_executed_total counter",
  ];
  const ws = Object.entries(PHASES[k]!);
  for (const [name, w] of ws) {
    lines.push(
      `agent_scripts_executed_total{agent_name="main",success="true",template_name="${w.template}",username="${name}-owner",workspace_name="${name}"} ${w.scripts}`,
    );
  }
  const h = "coderd_agents_first_connection_seconds";
  lines.push(`# TYPE ${h} histogram`);
  for (const [name, w] of ws) {
    const labels = `agent_name="main",template_name="${w.template}",username="${name}-owner",workspace_name="${name}"`;
    lines.push(`${h}_bucket{${labels},le="1"} ${w.connections}`);
    lines.push(`${h}_bucket{${labels},le="+Inf"} ${w.connections}`);
    lines.push(`${h}_sum{${labels}} ${w.connections * 0.5}`);
    lines.push(`${h}_count{${labels}} ${w.connections}`);
  }
  lines.push("# TYPE coder_metrics_test_phase gauge", `coder_metrics_test_phase ${k}`);
  lines.push(
    "# TYPE coder_metrics_test_true_total counter",
    `coder_metrics_test_true_total{template_name="t"} ${reference}`,
  );
  return `${lines.join("\n")}\n`;
}

let dir: string;
let standin: CoderStandin;
const exporters: RunningExporter[] = [];
let prometheus: RunningPrometheus | undefined;

async function exporter(name: string, config: string): Promise<RunningExporter> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, config);
  const e = await startExporter({
    upstream: standin.url,
    listen: { host: "127.0.0.1", port: 0 },
    config: path,
    scrapeTimeoutMs: 2000,
    maxBodyBytes: 8 * 1024 * 1024,
    hashKeyFile: undefined,
    configCheckIntervalMs: 60_000,
    log: silentLogger,
    defaultMetrics: false,
  });
  exporters.push(e);
  return e;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "aggregated-counters-"));
  standin = await startCoderStandin({ workspaces: 1 });
});
after(async () => {
  await prometheus?.stop();
  for (const e of exporters) await e.close();
  await standin?.close();
  await rm(dir, { recursive: true, force: true });
});

type Matrix = Array<{ metric: Record<string, string>; values: [number, string][] }>;
type Vector = Array<{ metric: Record<string, string>; value: [number, string] }>;

/** Evaluation time of the queries (seconds), when set: comparisons see the same range. */
let at: number | undefined;

async function api<T>(expr: string): Promise<T> {
  const time = at === undefined ? "" : `&time=${at}`;
  const r = await fetch(
    `${prometheus!.url}/api/v1/query?query=${encodeURIComponent(expr)}${time}`,
    {
      signal: AbortSignal.timeout(10_000),
    },
  );
  const body = (await r.json()) as { status: string; data: { result: T }; error?: string };
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}
const scalar = async (expr: string): Promise<number | undefined> => {
  const v = await api<Vector>(expr);
  return v.length === 1 ? Number(v[0]!.value[1]) : undefined;
};

test("increase() over an aggregated counter is the inputs' increase, without resets", async () => {
  const totals = trueTotals();
  standin.behaviour = { ...standin.behaviour, body: payload(0, totals[0]!) };
  const stateful = await exporter("stateful", "presets: [per_template]\n");
  const without = JSON.stringify(PER_TEMPLATE_REMOVED_LABELS);
  const stateless = await exporter(
    "stateless",
    `aggregate:
  - metrics: [agent_scripts_executed_total, coderd_agents_first_connection_seconds]
    without: ${without}
    counter_mode: stateless
`,
  );
  const target = (e: RunningExporter) => `127.0.0.1:${e.address.port}`;
  prometheus = await startPrometheus({
    global: { scrape_interval: "1s" },
    scrape_configs: [
      { job_name: "stateful", static_configs: [{ targets: [target(stateful)] }] },
      { job_name: "stateless", static_configs: [{ targets: [target(stateless)] }] },
    ],
  });

  for (let k = 0; k < PHASES.length; k++) {
    standin.behaviour = { ...standin.behaviour, body: payload(k, totals[k]!) };
    for (const job of ["stateful", "stateless"]) {
      await eventually(
        `Prometheus to scrape phase ${k} from the ${job} exporter`,
        async () =>
          (await scalar(`coder_metrics_test_phase{job="${job}"}`)) === k ? true : undefined,
        { timeoutMs: 60_000 },
      );
    }
  }

  // Everything below looks at the same moment (increase() extrapolates to it).
  at = Date.now() / 1000;
  const t = '{job="stateful",template_name="t"}';
  // The running total ends at the true total, and Prometheus saw no reset in any series.
  assert.equal(await scalar(`agent_scripts_executed_total${t}`), totals.at(-1));
  // Both families for both templates: 2 counters, 2 × (2 buckets, _sum, _count).
  let series = 0;
  for (const name of [
    "agent_scripts_executed_total",
    "coderd_agents_first_connection_seconds_bucket",
    "coderd_agents_first_connection_seconds_sum",
    "coderd_agents_first_connection_seconds_count",
  ]) {
    for (const s of await api<Vector>(`resets(${name}{job="stateful"}[10m])`)) {
      series++;
      assert.equal(Number(s.value[1]), 0, `resets of ${name}${JSON.stringify(s.metric)}`);
    }
  }
  assert.equal(series, 10);
  // increase() is that of the reference counter sampled in the same scrapes.
  const increase = await scalar(`increase(agent_scripts_executed_total${t}[10m])`);
  const reference = await scalar(
    'increase(coder_metrics_test_true_total{job="stateful",template_name="t"}[10m])',
  );
  assert.ok(
    increase !== undefined && reference !== undefined && Math.abs(increase - reference) < 1e-9,
    `increase ${increase}, reference ${reference}`,
  );
  // Raw samples: never down, and first to last is the true increase between the phases seen.
  const raw = await api<Matrix>(`agent_scripts_executed_total${t}[10m]`);
  const values = raw[0]!.values.map(([, v]) => Number(v));
  for (let i = 1; i < values.length; i++) assert.ok(values[i]! >= values[i - 1]!, `${values}`);
  assert.equal(values.at(-1)! - values[0]!, totals.at(-1)! - totals[0]!);
  // Template u vanished for a while: it came back where it had left off (no reset).
  const u = await api<Matrix>(
    'agent_scripts_executed_total{job="stateful",template_name="u"}[10m]',
  );
  const uValues = u[0]!.values.map(([, v]) => Number(v));
  assert.deepEqual([uValues[0], uValues.at(-1)], [2, 7]);

  // The per-scrape sum of the same series went down where workspaces left and reset.
  const falseResets = await scalar(
    'resets(agent_scripts_executed_total{job="stateless",template_name="t"}[10m])',
  );
  assert.ok(falseResets !== undefined && falseResets > 0, `stateless resets: ${falseResets}`);
});
