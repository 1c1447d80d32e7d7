// make soak: 20 concurrent scrapers, each scraping once a second, through the
// real exporter in front of a 5,000-workspace Coder stand-in, for a bounded
// time (SOAK_SECONDS, default 300). Prints latency p50/p99, errors, and the
// exporter's RSS over time, so memory growth shows. Figures, no assertions.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SIDECAR_NODE_OPTIONS } from "./bench-config.ts";
import { startStandinAndExporter } from "./processes.ts";

const seconds = Number(process.env.SOAK_SECONDS ?? 300);
const scrapers = Number(process.env.SOAK_SCRAPERS ?? 20);
const workspaces = Number(process.env.SOAK_WORKSPACES ?? 5000);

async function rssMb(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const dir = await mkdtemp(join(tmpdir(), "exporter-soak-"));
const config = join(dir, "exporter.yaml");
await writeFile(config, "presets: [drop_deprecated, per_template]\n");
const pair = await startStandinAndExporter({
  workspaces,
  config,
  // The stand-in serves agent stats: ~17 KB per workspace (the 256MiB default covers ~15,000).
  exporterArgs: ["--max-body-bytes", "256MiB"],
  env: { NODE_OPTIONS: SIDECAR_NODE_OPTIONS },
});
const exporter = pair.exporter;
const url = pair.url;
try {
  console.log(
    `soak: ${scrapers} scrapers × 1/s for ${seconds}s against ${workspaces} workspaces (${url})`,
  );
  const latencies: number[] = [];
  let errors = 0;
  const rss: Array<[number, number]> = [];
  const began = Date.now();
  const deadline = began + seconds * 1000;
  const sampler = setInterval(async () => {
    rss.push([Math.round((Date.now() - began) / 1000), await rssMb(exporter.pid!)]);
  }, 10_000);
  await Promise.all(
    Array.from({ length: scrapers }, async (_, i) => {
      await new Promise((r) => setTimeout(r, (1000 / scrapers) * i)); // spread like real scrapers
      while (Date.now() < deadline) {
        const t = performance.now();
        try {
          const res = await fetch(url, {
            headers: { "accept-encoding": "gzip" },
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer();
          if (!res.ok) errors++;
        } catch {
          errors++;
        }
        const took = performance.now() - t;
        latencies.push(took);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - took)));
      }
    }),
  );
  clearInterval(sampler);
  latencies.sort((a, b) => a - b);
  const first = rss[0]?.[1] ?? Number.NaN;
  const last = rss.at(-1)?.[1] ?? Number.NaN;
  const max = Math.max(...rss.map(([, v]) => v));
  console.log(`  scrapes            ${latencies.length} (${errors} errors)`);
  console.log(
    `  latency p50 / p99  ${percentile(latencies, 50).toFixed(0)} ms / ${percentile(latencies, 99).toFixed(0)} ms`,
  );
  console.log(
    `  exporter RSS       first ${first.toFixed(0)} MB, last ${last.toFixed(0)} MB, max ${max.toFixed(0)} MB`,
  );
  console.log(`  RSS over time      ${rss.map(([t, v]) => `${t}s:${v.toFixed(0)}`).join(" ")}`);
  console.log(`  growth first→last  ${(last - first).toFixed(0)} MB`);
} finally {
  pair.stop();
  await rm(dir, { recursive: true, force: true });
}
