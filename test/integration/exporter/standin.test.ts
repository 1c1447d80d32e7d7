// The coderd stand-in as the e2e suite runs it: a script honouring coderd's
// CODER_PROMETHEUS_* environment and answering /healthz on CODER_HTTP_ADDRESS,
// the port Coder's Helm chart probes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";

const SCRIPT = join(import.meta.dirname, "../../support/coder-standin.ts");

/** A free loopback port (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const CODER_ENV = [
  "CODER_PROMETHEUS_ENABLE",
  "CODER_PROMETHEUS_ADDRESS",
  "CODER_PROMETHEUS_COLLECT_AGENT_STATS",
  "CODER_PROMETHEUS_COLLECT_DB_METRICS",
  "CODER_HTTP_ADDRESS",
];

function start(args: string[], env: NodeJS.ProcessEnv) {
  const base = { ...process.env };
  for (const name of CODER_ENV) delete base[name];
  const child = spawn(process.execPath, [SCRIPT, ...args], { env: { ...base, ...env } });
  let stderr = "";
  const firstLine = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no output: ${stderr}`)), 15_000);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("\n")) {
        clearTimeout(timer);
        resolve(stderr.split("\n")[0]!);
      }
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { child, firstLine, exited };
}

describe("coder stand-in script", () => {
  it("with --require-env and no CODER_PROMETHEUS_ENABLE it serves nothing", async () => {
    const s = start(["--require-env", "--address", "127.0.0.1:0"], { CODER_PROMETHEUS_ENABLE: "" });
    assert.match(await s.firstLine, /CODER_PROMETHEUS_ENABLE is not true/);
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0);
  });

  it("with CODER_PROMETHEUS_ENABLE=true it binds CODER_PROMETHEUS_ADDRESS and serves the fixture", async () => {
    const s = start(["--require-env", "--address", "127.0.0.1:1", "--workspaces", "4"], {
      CODER_PROMETHEUS_ENABLE: "true",
      CODER_PROMETHEUS_ADDRESS: "127.0.0.1:0",
    });
    try {
      const line = JSON.parse(await s.firstLine) as { url: string };
      const res = await fetch(line.url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.equal(text.match(/^coderd_agents_up\{/gm)?.length, 4);
    } finally {
      s.child.kill("SIGTERM");
    }
    assert.equal(await s.exited, 0);
  });

  it("answers /healthz on CODER_HTTP_ADDRESS whether or not metrics are on, as the chart's probes expect", async () => {
    const port = await freePort();
    const s = start(["--require-env", "--address", "127.0.0.1:0"], {
      CODER_HTTP_ADDRESS: `127.0.0.1:${port}`,
    });
    try {
      assert.match(await s.firstLine, /CODER_PROMETHEUS_ENABLE is not true/);
      const res = await eventuallyFetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "OK");
    } finally {
      s.child.kill("SIGTERM");
    }
    assert.equal(await s.exited, 0);
  });

  it("serves agent-forwarded families only with CODER_PROMETHEUS_COLLECT_AGENT_STATS, as coderd does", async () => {
    const scrape = async (env: NodeJS.ProcessEnv) => {
      const s = start(["--require-env", "--workspaces", "2"], {
        CODER_PROMETHEUS_ENABLE: "1",
        CODER_PROMETHEUS_ADDRESS: "127.0.0.1:0",
        ...env,
      });
      try {
        const line = JSON.parse(await s.firstLine) as { url: string };
        const res = await fetch(line.url, { headers: { accept: "application/openmetrics-text" } });
        assert.equal(
          res.headers.get("content-type"),
          "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
          "never OpenMetrics, whatever the scraper accepts",
        );
        return await res.text();
      } finally {
        s.child.kill("SIGTERM");
        await s.exited;
      }
    };
    const off = await scrape({});
    assert.ok(!/^agent_sessions_total\{/m.test(off) && !/^coderd_agentstats_rx_bytes\{/m.test(off));
    assert.ok(!/^coderd_db_query_latencies_seconds_bucket\{/m.test(off), "DB metrics default off");
    assert.match(off, /^coderd_agents_up\{/m);
    const on = await scrape({
      CODER_PROMETHEUS_COLLECT_AGENT_STATS: "true",
      CODER_PROMETHEUS_COLLECT_DB_METRICS: "T",
    });
    assert.match(on, /^agent_sessions_total\{agent_name="main",magic_type="ssh"/m);
    assert.match(on, /^magicsock_recv_data_derp\{/m);
    assert.match(on, /^coderd_db_query_latencies_seconds_bucket\{/m);
  });

  it("refuses a boolean Go would not parse, as coderd refuses to start", async () => {
    const s = start(["--require-env"], { CODER_PROMETHEUS_ENABLE: "yes" });
    assert.notEqual(await s.exited, 0);
  });
});

/** GET `url` until it answers (the listener starts just after the first log line). */
async function eventuallyFetch(url: string): Promise<Response> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await fetch(url);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
