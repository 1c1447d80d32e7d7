// A stand-in for coderd's Prometheus endpoint: serves the catalogue fixture
// for N workspaces of one Coder release the way coderd's promhttp handler does
// (text format 0.0.4 — coderd never turns OpenMetrics on —, gzip when asked,
// any path). Tests can change its behaviour at run time (slow, failing,
// oversized, custom body) and count the requests it received.
//
// As a script (the e2e suite runs it as the coderd container):
//   node test/support/coder-standin.ts --address 0.0.0.0:2112 --workspaces 100
//        [--coder-version v2.35] [--require-env]
//        [--also-address 127.18.7.3:2112]   (a second address serving the same, for the process kubelet)
// With --require-env it reads coderd's own environment as coderd does: it
// serves metrics only when CODER_PROMETHEUS_ENABLE is true, on
// CODER_PROMETHEUS_ADDRESS (else --address, in place of coderd's default
// 127.0.0.1:2112, which the e2e suite's pods would share), with the
// agent-forwarded families only when CODER_PROMETHEUS_COLLECT_AGENT_STATS is
// true and the per-query DB families only when CODER_PROMETHEUS_COLLECT_DB_METRICS
// is (both default false); booleans as Go's strconv.ParseBool reads them, and a
// value it refuses stops the process, as it stops coderd. Whatever the metrics
// settings, it answers GET /healthz with "OK" on CODER_HTTP_ADDRESS when that is
// set (Coder's Helm chart sets 0.0.0.0:8080 and probes /healthz on that port).
// Without --require-env it serves on --address with both collections on.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { type CoderVersion, LATEST_RELEASE, VERSIONS } from "../../controller/coder/catalog.ts";
import { generateFixture } from "./coder-fixture.ts";

export interface StandinBehaviour {
  /** Wait this long before answering. */
  delayMs: number;
  /** HTTP status to answer with (the body is then a short error text). */
  status: number;
  /** Replace the fixture with this payload. */
  body: string | Buffer | undefined;
  contentType: string;
  /** Stream this many bytes of (valid) samples instead of the fixture. */
  streamBytes: number;
  /** Close the connection without answering. */
  hangUp: boolean;
}

export interface StandinOptions {
  host?: string;
  port?: number;
  workspaces?: number;
  seed?: number;
  /** The Coder release served (default: the newest release). */
  version?: CoderVersion;
  /** CODER_PROMETHEUS_COLLECT_AGENT_STATS (default true). */
  agentStats?: boolean;
  /** CODER_PROMETHEUS_COLLECT_DB_METRICS (default true). */
  dbMetrics?: boolean;
}

export interface CoderStandin {
  url: string;
  port: number;
  server: Server;
  /** Requests received so far. */
  readonly requests: number;
  /** Headers of the last request received. */
  readonly lastHeaders: import("node:http").IncomingHttpHeaders;
  behaviour: StandinBehaviour;
  /** The fixture text being served. */
  readonly fixture: string;
  close(): Promise<void>;
}

export const PROMETHEUS_CONTENT_TYPE =
  "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";

export function defaultBehaviour(): StandinBehaviour {
  return {
    delayMs: 0,
    status: 200,
    body: undefined,
    contentType: PROMETHEUS_CONTENT_TYPE,
    streamBytes: 0,
    hangUp: false,
  };
}

export async function startCoderStandin(options: StandinOptions = {}): Promise<CoderStandin> {
  const fixture = generateFixture({
    workspaces: options.workspaces ?? 10,
    seed: options.seed,
    version: options.version,
    agentStats: options.agentStats,
    dbMetrics: options.dbMetrics,
  });
  const fixtureBuf = Buffer.from(fixture);
  let fixtureGz: Buffer | undefined;
  let requests = 0;
  let lastHeaders: import("node:http").IncomingHttpHeaders = {};
  const state = { behaviour: defaultBehaviour() };

  const server = createServer((req, res) => {
    requests++;
    lastHeaders = req.headers;
    const b = state.behaviour;
    const answer = () => {
      if (b.hangUp) {
        req.socket.destroy();
        return;
      }
      if (b.status !== 200) {
        res.writeHead(b.status, { "content-type": "text/plain" });
        res.end(`internal error: secret-token-must-not-leak\n`);
        return;
      }
      if (b.streamBytes > 0) {
        streamSamples(res, b.streamBytes);
        return;
      }
      const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
      let body: Buffer = b.body === undefined ? fixtureBuf : Buffer.from(b.body);
      const headers: Record<string, string> = { "content-type": b.contentType };
      if (gzip) {
        if (b.body === undefined) {
          fixtureGz ??= gzipSync(fixtureBuf);
          body = fixtureGz;
        } else {
          body = gzipSync(body);
        }
        headers["content-encoding"] = "gzip";
      }
      headers["content-length"] = String(body.length);
      res.writeHead(200, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (b.delayMs > 0) {
      const t = setTimeout(answer, b.delayMs);
      res.on("close", () => clearTimeout(t));
    } else {
      answer();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${addr.port}/metrics`,
    port: addr.port,
    server,
    get requests() {
      return requests;
    },
    get lastHeaders() {
      return lastHeaders;
    },
    get behaviour() {
      return state.behaviour;
    },
    set behaviour(b: StandinBehaviour) {
      state.behaviour = b;
    },
    fixture,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Streams `bytes` of valid exposition, without a content-length, as a runaway exporter would. */
function streamSamples(res: import("node:http").ServerResponse, bytes: number): void {
  res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  const line = 'coderd_flood{workspace_name="ws-0000000000000000000000000000"} 1\n';
  const chunk = Buffer.from(line.repeat(Math.ceil(65536 / line.length)));
  let sent = 0;
  const pump = () => {
    while (sent < bytes) {
      sent += chunk.length;
      if (!res.write(chunk)) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  res.on("error", () => undefined);
  pump();
}

/** Go's strconv.ParseBool, as coderd reads its boolean settings. */
export function parseGoBool(value: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  return undefined;
}

function envBool(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = parseGoBool(raw);
  if (value === undefined) throw new Error(`${name}: invalid boolean ${JSON.stringify(raw)}`);
  return value;
}

function hostPort(address: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (m === null) throw new Error(`${what}: expected host:port, got ${address}`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port: Number(m[3]) };
}

/** coderd's /healthz on its HTTP address: what Coder's Helm chart probes. */
async function startHealthz(address: string): Promise<Server> {
  const { host, port } = hostPort(address, "CODER_HTTP_ADDRESS");
  const server = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("OK");
      return;
    }
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    res.end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    return eq?.slice(name.length + 3);
  };
  // Signals are handled before anything is announced, so a stop right after the
  // first line still ends cleanly.
  const stopped = new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  const requireEnv = argv.includes("--require-env");
  const version = (arg("coder-version") ?? LATEST_RELEASE) as CoderVersion;
  if (!VERSIONS.includes(version))
    throw new Error(`--coder-version: one of ${VERSIONS.join(", ")}, got ${version}`);
  let address = arg("address") ?? "0.0.0.0:2112";
  let enabled = true;
  if (requireEnv) {
    enabled = envBool("CODER_PROMETHEUS_ENABLE", false);
    // --address stands for coderd's default (127.0.0.1:2112) where loopback is shared.
    address = process.env.CODER_PROMETHEUS_ADDRESS || address;
  }
  const agentStats = envBool("CODER_PROMETHEUS_COLLECT_AGENT_STATS", !requireEnv);
  const dbMetrics = envBool("CODER_PROMETHEUS_COLLECT_DB_METRICS", !requireEnv);
  const httpAddress = requireEnv ? process.env.CODER_HTTP_ADDRESS : undefined;

  const standins: CoderStandin[] = [];
  if (enabled) {
    const also = arg("also-address");
    for (const [flag, text] of [
      ["--address", address],
      ...(also ? [["--also-address", also]] : []),
    ]) {
      const { host, port } = hostPort(text!, flag!);
      const standin = await startCoderStandin({
        host,
        port,
        version,
        workspaces: Number(arg("workspaces") ?? "10"),
        agentStats,
        dbMetrics,
      });
      standins.push(standin);
      process.stderr.write(
        `${JSON.stringify({ msg: "coder stand-in listening", url: standin.url, version, agentStats, dbMetrics, bytes: standin.fixture.length })}\n`,
      );
    }
  } else {
    // Like coderd without metrics: keep running (and healthy), serve no metrics.
    process.stderr.write(
      "coder-standin: CODER_PROMETHEUS_ENABLE is not true; metrics endpoint disabled\n",
    );
  }
  const health = httpAddress ? await startHealthz(httpAddress) : undefined;
  if (health !== undefined) {
    const a = health.address() as AddressInfo;
    process.stderr.write(
      `${JSON.stringify({ msg: "coder stand-in healthz", url: `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}/healthz` })}\n`,
    );
  }
  // Like coderd, run until told to stop (with no listener, nothing else keeps the loop alive).
  const idle = setInterval(() => undefined, 1 << 30);
  await stopped;
  clearInterval(idle);
  await Promise.all(standins.map((s) => s.close()));
  if (health !== undefined) {
    await new Promise<void>((resolve) => {
      health.close(() => resolve());
      health.closeAllConnections();
    });
  }
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
