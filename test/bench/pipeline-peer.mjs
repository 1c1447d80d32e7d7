// The exporter's side of the side-by-side benchmark with Prometheus's Go code
// (test/tools/promref `bench`): one Pipeline kept across N scrapes of the same
// payload, each fed in 64 KiB pieces as the exporter is fed. Run as its own
// process (with the sidecar's NODE_OPTIONS) so CPU time and peak RSS are this
// work's alone. Plain JavaScript over the compiled dist/ — the code the
// sidecar runs: a TypeScript entry would load Node's type stripping, ~30 MB
// of RSS the sidecar does not have (vs-prometheus.ts checks dist is fresh).
// Prints one JSON object:
//   {scrapes, series_in, series_out, bytes_out, first_scrape_ms, first_scrape_cpu_seconds,
//    steady_cpu_seconds (median per scrape after the first), cpu_seconds, max_rss_bytes}
// Usage: node test/bench/pipeline-peer.mjs --config FILE --payload FILE --scrapes N
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseExporterConfig } from "../../dist/controller/exporter/config/config.js";
import { Pipeline } from "../../dist/controller/exporter/pipeline.js";

const CHUNK = 64 * 1024;

const { values } = parseArgs({
  options: {
    config: { type: "string" },
    payload: { type: "string" },
    scrapes: { type: "string" },
  },
});
const scrapes = Number(values.scrapes);
if (!values.config || !values.payload || !(scrapes >= 1)) {
  console.error("usage: pipeline-peer.mjs --config FILE --payload FILE --scrapes N");
  process.exit(2);
}
const parsed = parseExporterConfig(readFileSync(values.config, "utf8"));
if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
const payload = readFileSync(values.payload);
const pipeline = new Pipeline(parsed.config, Buffer.from("bench-key"));

/** @type {number[]} */
const cpuMs = [];
let firstMs = 0;
let seriesIn = 0;
let seriesOut = 0;
let bytesOut = 0;
for (let i = 0; i < scrapes; i++) {
  const c = process.cpuUsage();
  const t = performance.now();
  const stream = pipeline.stream();
  for (let at = 0; at < payload.length; at += CHUNK) {
    stream.write(payload.subarray(at, at + CHUNK));
  }
  const out = stream.end();
  if (i === 0) firstMs = performance.now() - t;
  const d = process.cpuUsage(c);
  cpuMs.push((d.user + d.system) / 1000);
  seriesIn = out.stats.seriesIn;
  seriesOut = out.stats.seriesOut;
  bytesOut = out.chunks.reduce((n, c) => n + c.length, 0);
  // As the server does once it has copied the body out.
  out.release();
}
const steady = cpuMs.slice(1).sort((a, b) => a - b);
console.log(
  JSON.stringify({
    scrapes,
    series_in: seriesIn,
    series_out: seriesOut,
    bytes_out: bytesOut,
    first_scrape_ms: firstMs,
    first_scrape_cpu_seconds: cpuMs[0] / 1000,
    steady_cpu_seconds:
      steady.length > 0 ? steady[Math.floor(steady.length / 2)] / 1000 : Number.NaN,
    cpu_seconds: cpuMs.reduce((a, b) => a + b, 0) / 1000,
    max_rss_bytes: process.resourceUsage().maxRSS * 1024,
  }),
);
