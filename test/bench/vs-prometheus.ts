// The exporter's Pipeline against Prometheus's own Go code, side by side on
// the same payload and rules, runs interleaved (the machine is shared): promref
// `bench` (textparse + relabel.Process + text out, GOMAXPROCS=1), uncached and
// with a series cache across scrapes as the scrape loop keeps it, and
// test/bench/pipeline-peer.mjs (the compiled dist/) with the sidecar's NODE_OPTIONS. Figures are
// CPU time (getrusage), the best of the rounds for each side. Prometheus has
// no aggregation: the aggregation row compares the exporter's full bench
// config with Prometheus doing the ten rules only.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateFixture } from "../support/coder-fixture.ts";
import { BENCH_CONFIG, BENCH_RULES, SIDECAR_NODE_OPTIONS } from "./bench-config.ts";
import { stat } from "node:fs/promises";
import { newestSource, ROOT } from "./processes.ts";

interface Run {
  series_in: number;
  first_scrape_ms: number;
  cpu_seconds: number;
  max_rss_bytes: number;
  first_scrape_cpu_seconds?: number;
  steady_cpu_seconds?: number;
  error?: string | null;
}

function promrefBinary(): string {
  const dir = execFileSync(join(ROOT, "test/tools/go-tools.sh"), ["promref"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return join(dir.split("\n").at(-1)!, "promref");
}

function promref(
  bin: string,
  rules: string,
  payload: string,
  scrapes: number,
  cache: boolean,
): Run {
  const args = ["bench", "--rules", rules, "--payload", payload, "--scrapes", String(scrapes)];
  if (cache) args.push("--cache");
  const out = execFileSync(bin, args, {
    encoding: "utf8",
    env: { ...process.env, GOMAXPROCS: "1" },
    maxBuffer: 1 << 20,
  });
  const r = JSON.parse(out) as Run;
  if (r.error) throw new Error(`promref: ${r.error}`);
  return r;
}

/** The exporter's run, or undefined when it failed (its heap ran out: stderr says so). */
function exporter(
  config: string,
  payload: string,
  scrapes: number,
  nodeOptions = SIDECAR_NODE_OPTIONS,
): Run | undefined {
  let out: string;
  try {
    out = execFileSync(
      process.execPath,
      [
        "test/bench/pipeline-peer.mjs",
        "--config",
        config,
        "--payload",
        payload,
        "--scrapes",
        String(scrapes),
      ],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, NODE_OPTIONS: nodeOptions },
        maxBuffer: 1 << 20,
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
  } catch {
    return undefined;
  }
  return JSON.parse(out) as Run;
}

export interface Case {
  workspaces: number;
  agentStats: boolean;
}

export interface SideBySide {
  label: string;
  bytes: number;
  series: number;
  /** Runs of the exporter that failed (heap out of memory under the sidecar's NODE_OPTIONS). */
  failed: { exporter: number; aggregated: number };
  /** Series per CPU-second after the first scrape (NaN when every run failed). */
  steady: { exporter: number; goUncached: number; goCached: number };
  /** Series per second of the first scrape (wall), and per CPU-second. */
  first: { exporter: number; go: number; exporterCpu: number; goCpu: number };
  rssMb: { exporter: number; goUncached: number; goCached: number };
  /** The ten rules with Node's own heap defaults (no NODE_OPTIONS). */
  nodeDefaults: { steady: number; first: number; rssMb: number };
  /** The full bench config (aggregation, PII) in the exporter. */
  aggregated: { steady: number; first: number; rssMb: number };
}

const best = (xs: number[]) => (xs.length === 0 ? Number.NaN : Math.min(...xs));
const ok = (rs: (Run | undefined)[]) => rs.filter((r): r is Run => r !== undefined);
const mb = (b: number) => b / 1024 / 1024;

/** The peer runs dist/: refuse figures from a build older than the sources. */
async function requireFreshBuild(): Promise<void> {
  const built = await stat(join(ROOT, "dist/controller/exporter/pipeline.js")).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built < (await newestSource())) {
    throw new Error(
      "dist/ is missing or older than controller/: run `make build` (make bench does)",
    );
  }
}

export async function sideBySide(c: Case, rounds = 2): Promise<SideBySide> {
  await requireFreshBuild();
  const dir = await mkdtemp(join(tmpdir(), "vs-prometheus-"));
  try {
    const text = generateFixture({ workspaces: c.workspaces, agentStats: c.agentStats });
    const payload = join(dir, "payload.txt");
    const rules = join(dir, "rules.yaml");
    const config = join(dir, "exporter.yaml");
    const full = join(dir, "full.yaml");
    await writeFile(payload, text);
    await writeFile(rules, BENCH_RULES);
    await writeFile(config, `metric_relabel_configs:${BENCH_RULES}`);
    await writeFile(full, BENCH_CONFIG);
    const bin = promrefBinary();
    // Scrapes a run: the exporter's are fewer at 20,000 workspaces (its
    // runs take long); Prometheus's steady rate is the difference of an
    // n-scrape and a 1-scrape run, which needs n large enough to stand out of
    // the noise between runs.
    const n = c.workspaces >= 20_000 ? 5 : 11;
    const nGo = 11;
    const go1: Run[] = [];
    const goN: Run[] = [];
    const goC1: Run[] = [];
    const goCN: Run[] = [];
    const ours: (Run | undefined)[] = [];
    const agg: (Run | undefined)[] = [];
    const big: (Run | undefined)[] = [];
    for (let r = 0; r < rounds; r++) {
      go1.push(promref(bin, rules, payload, 1, false));
      ours.push(exporter(config, payload, n));
      goN.push(promref(bin, rules, payload, nGo, false));
      agg.push(exporter(full, payload, n));
      big.push(exporter(config, payload, n, ""));
      goC1.push(promref(bin, rules, payload, 1, true));
      goCN.push(promref(bin, rules, payload, nGo, true));
    }
    const series = goN[0]!.series_in;
    const steadyGo = (a: Run[], b: Run[]) => {
      const d = best(b.map((x) => x.cpu_seconds)) - best(a.map((x) => x.cpu_seconds));
      return d > 0 ? (series * (nGo - 1)) / d : Number.NaN;
    };
    const oks = ok(ours);
    const aggs = ok(agg);
    const bigs = ok(big);
    return {
      failed: { exporter: rounds - oks.length, aggregated: rounds - aggs.length },
      label: `${c.workspaces.toLocaleString("en-US")} workspaces, agent stats ${c.agentStats ? "on" : "off"}`,
      bytes: Buffer.byteLength(text),
      series,
      steady: {
        exporter: series / best(oks.map((x) => x.steady_cpu_seconds!)),
        goUncached: steadyGo(go1, goN),
        goCached: steadyGo(goC1, goCN),
      },
      first: {
        exporter: series / (best(oks.map((x) => x.first_scrape_ms)) / 1000),
        go: series / (best(go1.map((x) => x.first_scrape_ms)) / 1000),
        exporterCpu: series / best(oks.map((x) => x.first_scrape_cpu_seconds!)),
        goCpu: series / best(go1.map((x) => x.cpu_seconds)),
      },
      rssMb: {
        exporter: mb(best(oks.map((x) => x.max_rss_bytes))),
        goUncached: mb(best(goN.map((x) => x.max_rss_bytes))),
        goCached: mb(best(goCN.map((x) => x.max_rss_bytes))),
      },
      nodeDefaults: {
        steady: series / best(bigs.map((x) => x.steady_cpu_seconds!)),
        first: series / (best(bigs.map((x) => x.first_scrape_ms)) / 1000),
        rssMb: mb(best(bigs.map((x) => x.max_rss_bytes))),
      },
      aggregated: {
        steady: series / best(aggs.map((x) => x.steady_cpu_seconds!)),
        first: series / (best(aggs.map((x) => x.first_scrape_ms)) / 1000),
        rssMb: mb(best(aggs.map((x) => x.max_rss_bytes))),
      },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const k = (n: number) =>
  Number.isNaN(n) ? "failed" : `${Math.round(n / 1000).toLocaleString("en-US")}k`;
const ratio = (a: number, b: number) => (Number.isNaN(a / b) ? "—" : `${(a / b).toFixed(2)}×`);

export function printSideBySide(rows: SideBySide[]): void {
  console.log(
    "\nvs Prometheus v3's Go code (promref bench: textparse + relabel.Process + text out, GOMAXPROCS=1), " +
      `same payload and ten rules, interleaved, best of rounds; exporter = one Pipeline across scrapes, NODE_OPTIONS "${SIDECAR_NODE_OPTIONS}"`,
  );
  for (const r of rows) {
    console.log(
      `${r.label} (${(r.bytes / 1e6).toFixed(1)} MB, ${r.series.toLocaleString("en-US")} series):\n` +
        `  steady state, series/CPU-s: exporter ${k(r.steady.exporter)}; Prometheus uncached ${k(r.steady.goUncached)} ` +
        `(${ratio(r.steady.exporter, r.steady.goUncached)}), with scrapeCache ${k(r.steady.goCached)} (${ratio(r.steady.exporter, r.steady.goCached)})\n` +
        `  first scrape, series/s: exporter ${k(r.first.exporter)}; Prometheus ${k(r.first.go)} (${ratio(r.first.exporter, r.first.go)}); ` +
        `per CPU-s ${k(r.first.exporterCpu)} vs ${k(r.first.goCpu)} (${ratio(r.first.exporterCpu, r.first.goCpu)})\n` +
        `  peak RSS MB: exporter ${r.rssMb.exporter.toFixed(0)}; Prometheus uncached ${r.rssMb.goUncached.toFixed(0)}, ` +
        `cached ${r.rssMb.goCached.toFixed(0)} (${ratio(r.rssMb.exporter, r.rssMb.goCached)})\n` +
        `  exporter with Node's heap defaults: steady ${k(r.nodeDefaults.steady)} series/CPU-s ` +
        `(${ratio(r.nodeDefaults.steady, r.steady.goCached)} of Prometheus cached), first scrape ${k(r.nodeDefaults.first)} series/s, ` +
        `peak RSS ${r.nodeDefaults.rssMb.toFixed(0)} MB\n` +
        `  exporter with the full bench config (aggregation, presets, PII): steady ${k(r.aggregated.steady)} series/CPU-s, ` +
        `first scrape ${k(r.aggregated.first)} series/s, peak RSS ${r.aggregated.rssMb.toFixed(0)} MB` +
        (r.failed.exporter + r.failed.aggregated > 0
          ? `\n  exporter runs that failed (heap out of memory): ${r.failed.exporter} with the ten rules, ${r.failed.aggregated} with the full config`
          : ""),
    );
  }
}

export const CASES: Case[] = [
  { workspaces: 5000, agentStats: false },
  { workspaces: 5000, agentStats: true },
  { workspaces: 20_000, agentStats: false },
];

if (import.meta.main) {
  const only = process.argv[2];
  const cases = only
    ? CASES.filter((c) => `${c.workspaces}${c.agentStats ? "a" : ""}` === only)
    : CASES;
  const rows: SideBySide[] = [];
  for (const c of cases) rows.push(await sideBySide(c));
  printSideBySide(rows);
}
