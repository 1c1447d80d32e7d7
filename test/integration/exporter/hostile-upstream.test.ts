// An upstream that misbehaves at the socket level — trickling a byte a
// second, resetting mid-body, sending invalid UTF-8 — costs the exporter a
// bounded time, never half a payload; and neither the served text nor the
// logs carry a PII label value once it is hashed.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../../controller/common/log.ts";
import { type RunningExporter, startExporter } from "../../../controller/exporter/main.ts";

type Behaviour = (socket: Socket) => void;
const head = (length?: number) =>
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n${length === undefined ? "" : `content-length: ${length}\r\n`}connection: close\r\n\r\n`;
const PAYLOAD =
  '# TYPE coderd_workspace_builds_total counter\ncoderd_workspace_builds_total{owner_email="alice@example.com",status="success"} 3\n';

let behaviour: Behaviour = (s) => s.end(head(PAYLOAD.length) + PAYLOAD);
let server: Server;
let exporter: RunningExporter;
let dir: string;
const logs: string[] = [];
const timers = new Set<NodeJS.Timeout>();

async function scrape(): Promise<{ text: string; ms: number }> {
  const t = Date.now();
  const text = await fetch(`${exporter.url}/metrics`).then((r) => r.text());
  return { text, ms: Date.now() - t };
}

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

before(async () => {
  server = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => behaviour(socket));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address() as { port: number };
  dir = await mkdtemp(join(tmpdir(), "exporter-hostile-"));
  const config = join(dir, "exporter.yaml");
  await writeFile(config, "pii:\n  hash_labels: [owner_email]\n");
  const keyFile = join(dir, "key");
  await writeFile(keyFile, "a-test-hash-key");
  exporter = await startExporter({
    upstream: `http://127.0.0.1:${address.port}/metrics`,
    listen: { host: "127.0.0.1", port: 0 },
    config,
    scrapeTimeoutMs: 1500,
    maxBodyBytes: 1024 * 1024,
    hashKeyFile: keyFile,
    configCheckIntervalMs: 1000,
    log: createLogger({ write: (line) => logs.push(line), base: { component: "exporter" } }),
    defaultMetrics: false,
  });
});
after(async () => {
  for (const t of timers) clearInterval(t);
  await exporter?.close();
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("exporter against a hostile upstream", () => {
  it("a healthy answer has the PII label hashed, in the output and nowhere in the logs", async () => {
    behaviour = (s) => s.end(head(PAYLOAD.length) + PAYLOAD);
    const { text } = await scrape();
    assert.equal(value(text, "coder_metrics_exporter_upstream_up"), 1);
    assert.match(
      text,
      /coderd_workspace_builds_total\{owner_email="[0-9a-f]{16}",status="success"\} 3/,
    );
    assert.ok(!text.includes("alice@example.com"));
    assert.ok(!logs.join("").includes("alice@example.com"), "no email in the logs");
    assert.ok(!logs.join("").includes("a-test-hash-key"), "no key in the logs");
  });

  it("trickling one byte a second is cut at the scrape timeout", async () => {
    behaviour = (s) => {
      const body = head() + PAYLOAD;
      let i = 0;
      const timer = setInterval(() => {
        if (s.destroyed || i >= body.length) {
          clearInterval(timer);
          return;
        }
        s.write(body[i++] ?? "");
      }, 1000);
      timers.add(timer);
      s.on("close", () => clearInterval(timer));
    };
    const { text, ms } = await scrape();
    assert.ok(ms < 3000, `answered in ${ms} ms`);
    assert.equal(value(text, "coder_metrics_exporter_upstream_up"), 0);
    assert.ok(!/^coderd_/m.test(text), "never half a payload");
  });

  it("a reset in the middle of the body serves no coderd series", async () => {
    behaviour = (s) => {
      s.write(head(PAYLOAD.length * 2) + PAYLOAD);
      setTimeout(() => s.resetAndDestroy(), 50);
    };
    const { text } = await scrape();
    assert.equal(value(text, "coder_metrics_exporter_upstream_up"), 0);
    assert.ok(!/^coderd_/m.test(text));
  });

  it("invalid UTF-8 is refused, not passed on", async () => {
    const bad = Buffer.concat([
      Buffer.from('coderd_x{a="'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"} 1\n'),
    ]);
    behaviour = (s) => {
      s.write(head(bad.length));
      s.end(bad);
    };
    const { text } = await scrape();
    assert.equal(value(text, "coder_metrics_exporter_upstream_up"), 0);
    assert.ok(!/^coderd_x/m.test(text));
  });

  it("recovers on the next good answer", async () => {
    behaviour = (s) => s.end(head(PAYLOAD.length) + PAYLOAD);
    const { text } = await scrape();
    assert.equal(value(text, "coder_metrics_exporter_upstream_up"), 1);
  });
});
