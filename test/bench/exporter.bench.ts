// Exporter benchmark (`make bench`): for 100, 1,000 and 5,000 workspaces of
// the catalogue fixture, prints payload size and series, parse-only and
// end-to-end (parse + 10 relabel rules + aggregate + PII + serialize, fed in
// 64 KiB pieces as the exporter is) throughput, p50/p99 latency of a scrape
// through the running exporter against the coderd stand-in on loopback, and
// peak RSS (the per_template preset keeps counter state, so that is included),
// and the heap the counter state of aggregated counters holds; then the
// exporter's Pipeline against Prometheus's Go code side by side
// (vs-prometheus.ts). Figures only, no assertions. Run with --expose-gc for
// steadier numbers.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { generateFixture } from "../support/coder-fixture.ts";
import {
  type ExporterConfig,
  parseExporterConfig,
} from "../../controller/exporter/config/config.ts";
import { countSamples } from "../../controller/exporter/model/model.ts";
import { parse } from "../../controller/exporter/parse/parse.ts";
import { Pipeline } from "../../controller/exporter/pipeline.ts";
import { BENCH_CONFIG, SIDECAR_NODE_OPTIONS } from "./bench-config.ts";
import { exporterEntry, peakRssMb, startStandinAndExporter } from "./processes.ts";
import { CASES, printSideBySide, type SideBySide, sideBySide } from "./vs-prometheus.ts";

const CHUNK = 64 * 1024;

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
let peakRss = 0;
function sampleRss(): void {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/**
 * Median wall milliseconds of `fn` over `runs` back-to-back runs, after a
 * forced GC and two warm-up runs, and the median CPU milliseconds of this
 * process (which includes V8's parallel GC helpers, but is steadier than wall
 * time on a shared, busy machine). No GC is forced between timed runs: after
 * one V8 shrinks its young generation, which the exporter, scraping
 * continuously, never sees.
 */
function time(runs: number, fn: () => void): { wall: number; cpu: number } {
  gc();
  fn();
  fn();
  sampleRss();
  const ts: number[] = [];
  const cs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    fn();
    ts.push(performance.now() - t);
    const d = process.cpuUsage(c);
    cs.push((d.user + d.system) / 1000);
    sampleRss();
  }
  return { wall: median(ts), cpu: median(cs) };
}

/** JS heap plus typed-array memory in use. */
function usedMemory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Memory retained after one scrape by a pipeline (its caches and counter state). */
function retainedHeap(config: ExporterConfig, body: Buffer): { bytes: number; series: number } {
  gc();
  const before = usedMemory();
  const pipeline = new Pipeline(config, Buffer.from("bench-key"));
  const stream = pipeline.stream();
  for (let at = 0; at < body.length; at += CHUNK) stream.write(body.subarray(at, at + CHUNK));
  const series = stream.end().stats.counterStateSeries;
  gc();
  const bytes = usedMemory() - before;
  if (pipeline.config !== config) throw new Error("unreachable: keeps the pipeline alive");
  return { bytes, series };
}

/**
 * What counter state costs: the memory (heap and typed arrays) a pipeline
 * retains with the bench rules as they are, minus the same rules with every
 * aggregation stateless.
 */
function counterStateCost(config: ExporterConfig, body: Buffer): { series: number; bytes: number } {
  const stateless: ExporterConfig = {
    ...config,
    aggregate: config.aggregate.map((r) => ({ ...r, counterMode: "stateless" })),
  };
  const a = retainedHeap(stateless, body);
  const b = retainedHeap(config, body);
  return { series: b.series, bytes: b.bytes - a.bytes };
}

interface Row {
  workspaces: number;
  bytes: number;
  seriesIn: number;
  seriesOut: number;
  parseMs: number;
  e2eMs: number;
  e2eCpuMs: number;
  p50: number;
  p99: number;
  /** Peak RSS of this (benchmark) process. */
  benchRssMb: number;
  /** Peak RSS (VmHWM) of the exporter process, run as the sidecar runs by default. */
  rssMb: number;
  /** Same with Node's own heap defaults (no NODE_OPTIONS). */
  defaultsRssMb: number | undefined;
  defaultsP50: number | undefined;
  counterState: { series: number; bytes: number };
}

/**
 * Scrapes through the real exporter process (`coder-metrics exporter`) in front
 * of the stand-in process, both on loopback; returns latencies and the
 * exporter's peak RSS.
 */
async function scrapeThroughExporter(
  workspaces: number,
  requests: number,
  nodeOptions: string,
): Promise<{ latencies: number[]; rssMb: number }> {
  const dir = await mkdtemp(join(tmpdir(), "exporter-bench-"));
  const config = join(dir, "exporter.yaml");
  await writeFile(config, BENCH_CONFIG);
  const pair = await startStandinAndExporter({
    workspaces,
    config,
    exporterArgs: ["--scrape-timeout", "60s", "--max-body-bytes", "256MiB"],
    env: { CODER_METRICS_EXPORTER_HASH_KEY: "bench-key", NODE_OPTIONS: nodeOptions },
  });
  try {
    const latencies: number[] = [];
    for (let i = 0; i < requests; i++) {
      const t = performance.now();
      const res = await fetch(pair.url, { headers: { "accept-encoding": "gzip" } });
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
    }
    return { latencies, rssMb: await peakRssMb(pair.exporter.pid!) };
  } finally {
    pair.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function bench(workspaces: number): Promise<Row> {
  process.env.CODER_METRICS_EXPORTER_HASH_KEY ??= "bench-key";
  const text = generateFixture({ workspaces });
  const body = Buffer.from(text);
  const cfg = parseExporterConfig(BENCH_CONFIG);
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const pipeline = new Pipeline(cfg.config, Buffer.from("bench-key"));
  const seriesIn = countSamples(parse(body));
  const runs = workspaces >= 5000 ? 9 : workspaces >= 1000 ? 15 : 30;

  const parseMs = time(runs, () => {
    parse(body);
  }).wall;
  let seriesOut = 0;
  // As the exporter does it: the payload fed in 64 KiB pieces as they arrive.
  const e2e = time(runs, () => {
    const stream = pipeline.stream();
    for (let at = 0; at < body.length; at += CHUNK) stream.write(body.subarray(at, at + CHUNK));
    const out = stream.end();
    seriesOut = out.stats.seriesOut;
  });
  const counterState = counterStateCost(cfg.config, body);
  gc();
  const requests = workspaces >= 5000 ? 12 : 30;
  const scraped = await scrapeThroughExporter(workspaces, requests, SIDECAR_NODE_OPTIONS);
  const lat = scraped.latencies;
  const defaults =
    workspaces >= 5000 ? await scrapeThroughExporter(workspaces, requests, "") : undefined;
  return {
    workspaces,
    bytes: body.length,
    seriesIn,
    seriesOut,
    parseMs,
    e2eMs: e2e.wall,
    e2eCpuMs: e2e.cpu,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    benchRssMb: peakRss / 1024 / 1024,
    rssMb: scraped.rssMb,
    defaultsRssMb: defaults?.rssMb,
    defaultsP50: defaults ? percentile(defaults.latencies, 50) : undefined,
    counterState,
  };
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

const rows: Row[] = [];
for (const n of [100, 1000, 5000]) rows.push(await bench(n));

const header = [
  "workspaces",
  "bytes",
  "series in",
  "series out",
  "parse series/s",
  "parse MB/s",
  "e2e series/s",
  "e2e MB/s",
  "e2e series/cpu-s",
  "scrape p50 ms",
  "scrape p99 ms",
  "exporter peak RSS MB",
];
const table = rows.map((r) => [
  fmt(r.workspaces),
  fmt(r.bytes),
  fmt(r.seriesIn),
  fmt(r.seriesOut),
  fmt(r.seriesIn / (r.parseMs / 1000)),
  fmt(r.bytes / 1e6 / (r.parseMs / 1000), 1),
  fmt(r.seriesIn / (r.e2eMs / 1000)),
  fmt(r.bytes / 1e6 / (r.e2eMs / 1000), 1),
  fmt(r.seriesIn / (r.e2eCpuMs / 1000)),
  fmt(r.p50, 1),
  fmt(r.p99, 1),
  fmt(r.rssMb, 0),
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
console.log(
  `node ${process.version}, ${process.arch}; e2e = parse + 10 relabel rules + aggregate + pii + serialize, fed in 64 KiB pieces (in process);\n` +
    "scrape = GET /metrics (gzip) through `coder-metrics exporter` in front of the coder stand-in, separate processes on loopback;\n" +
    `exporter run from ${(await exporterEntry()).label}`,
);
console.log(
  `load average at the end: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} on ${cpus().length} CPUs`,
);
console.log(line(header));
for (const row of table) console.log(line(row));
const last = rows.at(-1)!;
const e2e = last.seriesIn / (last.e2eMs / 1000);
console.log(
  `exporter run with the sidecar's default NODE_OPTIONS (${SIDECAR_NODE_OPTIONS}); 5,000 workspaces with Node's ` +
    `heap defaults instead: peak RSS ${fmt(last.defaultsRssMb ?? Number.NaN)} MB, scrape p50 ` +
    `${fmt(last.defaultsP50 ?? Number.NaN, 1)} ms; benchmark process peak RSS ${fmt(last.benchRssMb)} MB`,
);
const cs = last.counterState;
console.log(
  `counter state of aggregated counters (5,000 workspaces): ${fmt(cs.series)} input series, ` +
    `${fmt(cs.bytes / 1024 / 1024, 1)} MB of heap and typed arrays (${fmt(cs.bytes / Math.max(1, cs.series))} bytes each)`,
);
const bestRss = last.rssMb;
console.log(
  `target (5,000 workspaces, one core): ≥ 500,000 series/s end to end — ${fmt(e2e)} ${e2e >= 500_000 ? "(met)" : "(not met)"}; ` +
    `exporter peak RSS ≤ 200 MB — ${fmt(bestRss)} MB ${bestRss <= 200 ? "(met)" : "(not met)"}`,
);

// Side by side with Prometheus's own Go code (promref), same payloads and rules.
const side: SideBySide[] = [];
for (const c of CASES) side.push(await sideBySide(c));
printSideBySide(side);
