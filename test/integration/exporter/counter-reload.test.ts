// The running totals of aggregated counters across configuration reloads of
// the exporter in-process: kept when the rule and the relabel rules stay,
// started over when the relabel rules change.
import assert from "node:assert/strict";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { silentLogger } from "../../../controller/common/log.ts";
import { type RunningExporter, startExporter } from "../../../controller/exporter/main.ts";
import { type CoderStandin, startCoderStandin } from "../../support/coder-standin.ts";
import { eventually } from "../../support/kube.ts";

const RULE = "aggregate: [{metrics: [c], without: [w]}]\n";
const payload = (values: Record<string, number>) =>
  `# TYPE c counter\n${Object.entries(values)
    .map(([w, v]) => `c{w="${w}"} ${v}`)
    .join("\n")}\n`;

let dir: string;
let config: string;
let standin: CoderStandin;
let exporter: RunningExporter;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "counter-reload-"));
  config = join(dir, "exporter.yaml");
  await writeFile(config, RULE);
  standin = await startCoderStandin({ workspaces: 1 });
  exporter = await startExporter({
    upstream: standin.url,
    listen: { host: "127.0.0.1", port: 0 },
    config,
    scrapeTimeoutMs: 2000,
    maxBodyBytes: 1024 * 1024,
    hashKeyFile: undefined,
    configCheckIntervalMs: 100,
    log: silentLogger,
    defaultMetrics: false,
  });
});
after(async () => {
  await exporter?.close();
  await standin?.close();
  await rm(dir, { recursive: true, force: true });
});

async function scrape(values: Record<string, number>): Promise<{ c: number; text: string }> {
  standin.behaviour = { ...standin.behaviour, body: payload(values) };
  const text = await (await fetch(`${exporter.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("c "));
  return { c: Number(line?.slice(2)), text };
}

async function reload(text: string, loads: number): Promise<void> {
  // Replaced at once, as a ConfigMap update is (a half-written file is a valid empty config).
  await writeFile(`${config}.new`, text);
  await rename(`${config}.new`, config);
  await eventually("the configuration to be reloaded", async () => {
    const self = await (await fetch(`${exporter.url}/metrics`)).text();
    const m = /coder_metrics_exporter_config_reloads_total\{result="success"\} (\d+)/.exec(self);
    return Number(m?.[1]) >= loads ? true : undefined;
  });
}

test("a reload that keeps the rule and the relabeling keeps the totals; changed relabeling starts over", async () => {
  assert.equal((await scrape({ a: 5, b: 7 })).c, 12);
  assert.equal((await scrape({ a: 6 })).c, 13, "b left: no drop");
  const kept = await scrape({ a: 6 });
  assert.match(kept.text, /coder_metrics_exporter_counter_state_series 2\n/);

  await reload(`${RULE}series_limit: 1000\n`, 2);
  const carried = await scrape({ a: 8 });
  assert.equal(carried.c, 15, carried.text);

  await reload(`${RULE}metric_relabel_configs: [{target_label: env, replacement: prod}]\n`, 3);
  const fresh = await scrape({ a: 9 });
  assert.match(fresh.text, /^c\{env="prod"\} 9$/m, "started over at the current sum");
});
