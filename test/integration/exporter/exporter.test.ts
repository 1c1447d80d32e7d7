// The exporter in-process against the coderd stand-in on loopback.
import assert from "node:assert/strict";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { silentLogger } from "../../../controller/common/log.ts";
import {
  type ExporterOptions,
  type RunningExporter,
  startExporter,
} from "../../../controller/exporter/main.ts";
import {
  type CoderStandin,
  defaultBehaviour,
  startCoderStandin,
} from "../../support/coder-standin.ts";

async function get(url: string, headers: Record<string, string> = {}, method = "GET") {
  const res = await fetch(url, { headers, method });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString("utf8") };
}

/** The value of a self-metric line (first match), or undefined. */
function metric(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

interface Env {
  dir: string;
  config: string;
  standin: CoderStandin;
  exporter: RunningExporter;
}

async function setup(
  configText: string | undefined,
  options: Partial<ExporterOptions> = {},
): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), "exporter-it-"));
  const config = join(dir, "exporter.yaml");
  if (configText !== undefined) await writeFile(config, configText);
  const standin = await startCoderStandin({ workspaces: 20 });
  const exporter = await startExporter({
    upstream: standin.url,
    listen: { host: "127.0.0.1", port: 0 },
    config,
    scrapeTimeoutMs: 2000,
    maxBodyBytes: 8 * 1024 * 1024,
    hashKeyFile: undefined,
    configCheckIntervalMs: 200,
    log: silentLogger,
    defaultMetrics: false,
    ...options,
  });
  return { dir, config, standin, exporter };
}

async function teardown(env: Env): Promise<void> {
  await env.exporter.close();
  await env.standin.close();
  await rm(env.dir, { recursive: true, force: true });
}

const RULES = `metric_relabel_configs:
  - source_labels: [__name__]
    regex: go_.*
    action: drop
presets: [per_template, drop_deprecated]
pii:
  drop_labels: [username]
`;

describe("exporter: serving", () => {
  let env: Env;
  before(async () => {
    env = await setup(RULES);
  });
  after(() => teardown(env));

  it("serves transformed coderd series followed by self-metrics", async () => {
    const r = await get(`${env.exporter.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.ok(!r.text.includes("go_goroutines"), "go_* dropped by relabeling");
    assert.ok(!r.text.includes("coderd_api_workspace_latest_build_total"), "deprecated dropped");
    assert.ok(!r.text.includes("username="), "pii label dropped");
    for (const line of r.text.split("\n")) {
      if (/^coderd_agent(s|stats)_/.test(line)) {
        assert.ok(!line.includes("workspace_name="), `per-workspace series aggregated: ${line}`);
      }
    }
    assert.match(r.text, /coderd_agents_up\{template_name="template-0"\} \d+/);
    assert.equal(metric(r.text, "coder_metrics_exporter_upstream_up"), 1);
    const seriesIn = metric(r.text, "coder_metrics_exporter_series_in")!;
    const seriesOut = metric(r.text, "coder_metrics_exporter_series_out")!;
    assert.ok(seriesIn > seriesOut && seriesOut > 0, `in ${seriesIn} out ${seriesOut}`);
    assert.ok(
      metric(r.text, 'coder_metrics_exporter_series_dropped_total{reason="aggregated"}')! > 0,
    );
    assert.equal(metric(r.text, "coder_metrics_exporter_config_last_reload_successful"), 1);
  });

  it("answers a repeated scrape from its series cache, serving the same series", async () => {
    const url = `${env.exporter.url}/metrics`;
    const series = (text: string) =>
      text
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("coder_metrics_exporter_"))
        .map((l) => l.slice(0, l.lastIndexOf(" ")))
        .sort();
    const first = await get(url);
    const second = await get(url);
    assert.deepEqual(series(second.text), series(first.text));
    const hits = metric(second.text, "coder_metrics_exporter_series_cache_hits")!;
    const seriesIn = metric(second.text, "coder_metrics_exporter_series_in")!;
    assert.ok(hits > 0 && hits <= seriesIn, `hits ${hits} of ${seriesIn}`);
    assert.ok(metric(second.text, "coder_metrics_exporter_series_cache_series")! > 0);
    assert.ok(metric(second.text, "coder_metrics_exporter_series_cache_bytes")! > 0);
  });

  it("compresses for scrapers that accept gzip", async () => {
    const plainText = (await get(`${env.exporter.url}/metrics`)).text;
    const r = await fetch(`${env.exporter.url}/metrics`, {
      headers: { "accept-encoding": "gzip" },
    });
    assert.equal(r.headers.get("content-encoding"), "gzip");
    // fetch decompresses transparently; check the raw encoding with node:http too.
    const text = await r.text();
    const coder = (t: string) =>
      t
        .split("\n")
        .filter((l) => l.startsWith("coderd_"))
        .join("\n");
    assert.equal(coder(text), coder(plainText));
    const raw = await new Promise<Buffer>((resolve, reject) => {
      import("node:http").then(({ get: httpGet }) => {
        httpGet(
          `${env.exporter.url}/metrics`,
          { headers: { "accept-encoding": "gzip" } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve(Buffer.concat(chunks)));
          },
        ).on("error", reject);
      }, reject);
    });
    assert.match(gunzipSync(raw).toString("utf8"), /coder_metrics_exporter_upstream_up 1/);
  });

  it("health, readiness, 404 and 405", async () => {
    assert.equal((await get(`${env.exporter.url}/healthz`)).status, 200);
    assert.equal((await get(`${env.exporter.url}/readyz`)).status, 200);
    assert.equal((await get(`${env.exporter.url}/`)).status, 404);
    assert.equal((await get(`${env.exporter.url}/metrics/../secret`)).status, 404);
    assert.equal((await get(`${env.exporter.url}/metrics`, {}, "POST")).status, 405);
  });

  it("asks for text 0.0.4 or OpenMetrics and converts OpenMetrics answers", async () => {
    env.standin.behaviour = {
      ...defaultBehaviour(),
      contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8",
      body: '# TYPE coderd_om_requests counter\n# HELP coderd_om_requests Requests.\ncoderd_om_requests_total{code="200"} 7\ncoderd_om_requests_created{code="200"} 1.7e9\n# EOF\n',
    };
    try {
      const r = await get(`${env.exporter.url}/metrics`);
      assert.match(
        r.text,
        /# HELP coderd_om_requests_total Requests\.\n# TYPE coderd_om_requests_total counter\ncoderd_om_requests_total\{code="200"\} 7\n/,
      );
      // Prometheus 3 stores _created samples as series: so are they served.
      assert.match(r.text, /^coderd_om_requests_created\{code="200"\} 1\.7e9$/m);
      const accept = String(env.standin.lastHeaders.accept);
      assert.match(accept, /text\/plain;version=0\.0\.4/);
      assert.match(accept, /application\/openmetrics-text/);
      assert.match(String(env.standin.lastHeaders["accept-encoding"]), /gzip/);
    } finally {
      env.standin.behaviour = defaultBehaviour();
    }
  });

  it("HEAD /metrics answers headers only", async () => {
    const r = await get(`${env.exporter.url}/metrics`, {}, "HEAD");
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.ok(Number(r.headers.get("content-length")) > 0);
  });

  it("two concurrent scrapes share one upstream scrape (single flight)", async () => {
    env.standin.behaviour = { ...defaultBehaviour(), delayMs: 300 };
    try {
      const before = env.standin.requests;
      const [a, b] = await Promise.all([
        get(`${env.exporter.url}/metrics`),
        get(`${env.exporter.url}/metrics`),
      ]);
      assert.equal(env.standin.requests - before, 1);
      assert.equal(a.text, b.text);
      // A later scrape is a new upstream scrape.
      await get(`${env.exporter.url}/metrics`);
      assert.equal(env.standin.requests - before, 2);
    } finally {
      env.standin.behaviour = defaultBehaviour();
    }
  });
});

describe("exporter: upstream failures serve self-metrics only", () => {
  let env: Env;
  before(async () => {
    env = await setup(RULES, { scrapeTimeoutMs: 500 });
  });
  after(() => teardown(env));

  const failing = async (reason: string) => {
    const r = await get(`${env.exporter.url}/metrics`);
    assert.equal(r.status, 200);
    assert.ok(!/^coderd_/m.test(r.text), "no coderd series at all (never half a payload)");
    assert.equal(metric(r.text, "coder_metrics_exporter_upstream_up"), 0);
    assert.ok(
      metric(r.text, `coder_metrics_exporter_upstream_errors_total{reason="${reason}"}`)! >= 1,
    );
    assert.ok(!r.text.includes("secret-token-must-not-leak"));
    assert.equal((await get(`${env.exporter.url}/readyz`)).status, 200, "still ready");
    return r;
  };

  it("slow upstream: times out", async () => {
    env.standin.behaviour = { ...defaultBehaviour(), delayMs: 5000 };
    const t = Date.now();
    await failing("timeout");
    assert.ok(Date.now() - t < 3000, "answered within the scrape timeout");
  });

  it("upstream error status: body is not echoed", async () => {
    env.standin.behaviour = { ...defaultBehaviour(), status: 500 };
    await failing("http_status");
  });

  it("malformed payload", async () => {
    env.standin.behaviour = { ...defaultBehaviour(), body: 'coderd_x{a="b" 1\n' };
    await failing("malformed");
  });

  it("connection dropped", async () => {
    env.standin.behaviour = { ...defaultBehaviour(), hangUp: true };
    await failing("connect");
  });

  it("recovers when upstream is back", async () => {
    env.standin.behaviour = defaultBehaviour();
    const r = await get(`${env.exporter.url}/metrics`);
    assert.equal(metric(r.text, "coder_metrics_exporter_upstream_up"), 1);
    assert.match(r.text, /^coderd_agents_up/m);
  });
});

describe("exporter: Prometheus 3 names and series", () => {
  // As Prometheus 3 asks (scrape.go) and as a scraper that does not ask.
  const PROMETHEUS_3 =
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3";
  let env: Env;
  before(async () => {
    env = await setup(
      `metric_relabel_configs:
  - {source_labels: ["http.route"], regex: "/api/(.*)", target_label: "api.path", replacement: "$1"}
  - {source_labels: [kill], regex: "yes", target_label: __name__, replacement: ""}
`,
    );
  });
  after(() => teardown(env));

  it("serves UTF-8 names quoted to Prometheus 3, escaped to other scrapers", async () => {
    env.standin.behaviour = {
      ...defaultBehaviour(),
      body: '# TYPE "coder.http.requests" counter\n{"coder.http.requests","http.route"="/api/v2"} 7\n',
    };
    try {
      const p3 = await get(`${env.exporter.url}/metrics`, { accept: PROMETHEUS_3 });
      assert.equal(
        p3.headers.get("content-type"),
        "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8",
      );
      assert.match(p3.text, /^# TYPE "coder\.http\.requests" counter$/m);
      assert.match(
        p3.text,
        /^\{"coder\.http\.requests","http\.route"="\/api\/v2","api\.path"="v2"\} 7$/m,
      );
      const others: Record<string, string>[] = [{}, { accept: "text/plain;version=0.0.4" }];
      for (const headers of others) {
        const other = await get(`${env.exporter.url}/metrics`, headers);
        assert.equal(
          other.headers.get("content-type"),
          "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
        );
        assert.match(
          other.text,
          /^coder_http_requests\{http_route="\/api\/v2",api_path="v2"\} 7$/m,
        );
        assert.ok(!other.text.includes('"coder.http.requests"'));
      }
      // coderd is asked for UTF-8 names too.
      assert.match(String(env.standin.lastHeaders.accept), /escaping=allow-utf-8/);
    } finally {
      env.standin.behaviour = defaultBehaviour();
    }
  });

  it("a series a rule leaves without a name fails the scrape, as in Prometheus", async () => {
    env.standin.behaviour = {
      ...defaultBehaviour(),
      body: 'coderd_fine{a="1"} 1\ncoderd_victim{kill="yes"} 2\n',
    };
    try {
      const r = await get(`${env.exporter.url}/metrics`);
      assert.equal(r.status, 200);
      assert.ok(!/^coderd_/m.test(r.text), "no coderd series at all");
      assert.equal(metric(r.text, "coder_metrics_exporter_upstream_up"), 0);
      assert.equal(
        metric(r.text, 'coder_metrics_exporter_upstream_errors_total{reason="invalid_series"}'),
        1,
      );
      assert.equal(
        metric(r.text, 'coder_metrics_exporter_rule_errors_total{reason="invalid_series"}'),
        1,
      );
    } finally {
      env.standin.behaviour = defaultBehaviour();
    }
  });
});

describe("exporter: oversized upstream", () => {
  let env: Env;
  before(async () => {
    env = await setup(undefined, { maxBodyBytes: 10 * 1024 * 1024, scrapeTimeoutMs: 10_000 });
  });
  after(() => teardown(env));

  it("a 50 MB payload over a 10 MiB limit is refused without buffering it", async () => {
    env.standin.behaviour = { ...defaultBehaviour(), streamBytes: 50 * 1024 * 1024 };
    const r = await get(`${env.exporter.url}/metrics`);
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes("coderd_flood"));
    assert.equal(metric(r.text, "coder_metrics_exporter_upstream_up"), 0);
    assert.equal(
      metric(r.text, 'coder_metrics_exporter_upstream_errors_total{reason="too_large"}'),
      1,
    );
    const received = metric(r.text, "coder_metrics_exporter_upstream_received_bytes_total")!;
    assert.ok(received < 12 * 1024 * 1024, `read ${received} bytes`);
  });

  it("a gzip bomb is cut at the limit after decompression", async () => {
    env.standin.behaviour = {
      ...defaultBehaviour(),
      body: `x 1\n${"#".repeat(20 * 1024 * 1024)}\n`,
    };
    const r = await get(`${env.exporter.url}/metrics`);
    assert.equal(
      metric(r.text, 'coder_metrics_exporter_upstream_errors_total{reason="too_large"}'),
      2,
    );
  });
});

describe("exporter: configuration reload", () => {
  let env: Env;
  before(async () => {
    env = await setup("drop_metrics: ['go_*']\n");
  });
  after(() => teardown(env));

  it("missing → good → changed → bad keeps the last good one", async () => {
    let r = await get(`${env.exporter.url}/metrics`);
    assert.ok(!/^go_/m.test(r.text));
    assert.match(r.text, /^process_/m);

    // A ConfigMap-style swap: write elsewhere and rename over.
    const tmp = `${env.config}.tmp`;
    await writeFile(tmp, "drop_metrics: ['process_*']\n");
    await rename(tmp, env.config);
    await until("new config applied", async () => {
      r = await get(`${env.exporter.url}/metrics`);
      return /^go_/m.test(r.text) && !/^process_/m.test(r.text);
    });
    const okTime = metric(
      r.text,
      "coder_metrics_exporter_config_last_reload_success_timestamp_seconds",
    )!;

    // Swapped in whole too: an in-place write can be read half-written (empty = a valid,
    // rule-less config), which a ConfigMap update never shows.
    await writeFile(tmp, "metric_relabel_configs:\n  - {action: drop, regex: '(unclosed'}\n");
    await rename(tmp, env.config);
    await until("bad config reported", async () => {
      r = await get(`${env.exporter.url}/metrics`);
      return metric(r.text, "coder_metrics_exporter_config_last_reload_successful") === 0;
    });
    assert.ok(!/^process_/m.test(r.text), "last good config still applied");
    assert.equal(
      metric(r.text, "coder_metrics_exporter_config_last_reload_success_timestamp_seconds"),
      okTime,
    );
    assert.ok(
      metric(r.text, 'coder_metrics_exporter_config_reloads_total{result="failure"}')! >= 1,
    );
    assert.equal((await get(`${env.exporter.url}/readyz`)).status, 200);
  });
});

describe("exporter: invalid configuration at start", () => {
  let env: Env;
  before(async () => {
    env = await setup("- {action: hashmod}\n");
  });
  after(() => teardown(env));

  it("is not ready and serves self-metrics only until a valid file appears", async () => {
    assert.equal((await get(`${env.exporter.url}/readyz`)).status, 503);
    const r = await get(`${env.exporter.url}/metrics`);
    assert.ok(!/^coderd_/m.test(r.text));
    assert.equal(env.standin.requests, 0, "upstream not scraped without a valid config");
    await writeFile(env.config, "[]\n");
    await until("ready", async () => (await get(`${env.exporter.url}/readyz`)).status === 200);
  });
});
