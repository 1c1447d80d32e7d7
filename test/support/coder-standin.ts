// A stand-in for coderd's Prometheus endpoint: serves the catalogue fixture
// for N workspaces the way promhttp does (text 0.0.4, gzip when asked, any
// path). Tests can change its behaviour at run time (slow, failing, oversized,
// custom body) and count the requests it received.
//
// As a script (the e2e suite runs it as the coderd container):
//   node test/support/coder-standin.ts --address 0.0.0.0:2112 --workspaces 100 [--require-env]
//     [--also-address 127.18.7.3:2112]   (a second address serving the same, for the process kubelet)
// With --require-env it serves only when CODER_PROMETHEUS_ENABLE=true and binds
// to CODER_PROMETHEUS_ADDRESS when set, like coderd; otherwise it idles.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
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
  agentStats?: boolean;
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

async function main(argv: string[]): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    return eq?.slice(name.length + 3);
  };
  const requireEnv = argv.includes("--require-env");
  let address = arg("address") ?? "0.0.0.0:2112";
  if (requireEnv) {
    if (process.env.CODER_PROMETHEUS_ENABLE !== "true") {
      // Like coderd without metrics: keep running, serve nothing.
      const idle = setInterval(() => undefined, 1 << 30);
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
        process.stderr.write(
          "coder-standin: CODER_PROMETHEUS_ENABLE is not true; metrics endpoint disabled\n",
        );
      });
      clearInterval(idle);
      return;
    }
    address = process.env.CODER_PROMETHEUS_ADDRESS || address;
  }
  const also = arg("also-address");
  const standins = [];
  for (const [flag, text] of [["address", address], ...(also ? [["also-address", also]] : [])]) {
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text ?? "");
    if (m === null) throw new Error(`--${flag}: expected host:port, got ${text}`);
    const standin = await startCoderStandin({
      host: m[1] ?? (m[2] || "0.0.0.0"),
      port: Number(m[3]),
      workspaces: Number(arg("workspaces") ?? "10"),
      agentStats: process.env.CODER_PROMETHEUS_COLLECT_AGENT_STATS !== "false",
      dbMetrics: process.env.CODER_PROMETHEUS_COLLECT_DB_METRICS !== "false",
    });
    standins.push(standin);
    process.stderr.write(
      `${JSON.stringify({ msg: "coder stand-in listening", url: standin.url, bytes: standin.fixture.length })}\n`,
    );
  }
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await Promise.all(standins.map((s) => s.close()));
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
