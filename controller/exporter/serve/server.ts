// The exporter's HTTP server (node:http):
//   /metrics  transformed coderd series followed by the exporter's own metrics;
//   /healthz  the process is alive;
//   /readyz   a valid configuration is loaded and the server listens (coderd
//             being down does not make the exporter unready: Prometheus must
//             still see upstream_up 0);
//   anything else 404.
// One upstream scrape per incoming scrape, shared by concurrent scrapers
// (single flight: an HA Prometheus pair costs coderd one scrape). When the
// upstream scrape fails for any reason the answer is the self-metrics only,
// never a partial payload. The text format is negotiated as client_golang
// does (negotiate.ts): UTF-8 names are served quoted to a scraper that asks
// for escaping=allow-utf-8 (Prometheus 3), escaped to any other.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { constants, gzip } from "node:zlib";
import type { Logger } from "../../common/log.ts";
import type { SelfMetrics, UpstreamErrorReason } from "../self-metrics.ts";
import { InvalidSeriesError, ParseError } from "../model/model.ts";
import { type Escaping, escapeExposition } from "../serialize/serialize.ts";
import { negotiateEscaping, textContentType } from "./negotiate.ts";
import type { Pipeline, PipelineStream } from "../pipeline.ts";
import type { Upstream } from "../upstream/upstream.ts";

const gzipAsync = promisify(gzip);

export interface ServerDeps {
  upstream: Upstream;
  metrics: SelfMetrics;
  log: Logger;
  /** The pipeline of the last good configuration, or undefined before one loaded. */
  pipeline: () => Pipeline | undefined;
}

/** One way of writing a flight's answer, and its gzip once a scraper asked. */
interface Rendering {
  body: Buffer;
  gzipped: Promise<Buffer> | undefined;
}

interface Flight {
  /**
   * The transformed upstream payload, kept only when it has names that are
   * not legacy-valid (other renderings are made from it on request).
   */
  upstream: Buffer | undefined;
  self: Buffer;
  /** By escaping scheme; allow-utf-8 (UTF-8 names quoted) is made at once. */
  renderings: Map<Escaping, Rendering>;
}

/** The answer for a scraper that negotiated `escaping`. */
function rendering(flight: Flight, escaping: Escaping): Rendering {
  // Without UTF-8 names every scheme writes the same text.
  const up = flight.upstream;
  const key: Escaping = up !== undefined ? escaping : "allow-utf-8";
  let r = flight.renderings.get(key);
  if (r === undefined) {
    // Only reached with UTF-8 names, for a scheme other than allow-utf-8.
    r = { body: Buffer.concat([escapeExposition(up!, key), flight.self]), gzipped: undefined };
    flight.renderings.set(key, r);
  }
  return r;
}

/** A /metrics answer computed once per flight. */
export class Scraper {
  readonly #deps: ServerDeps;
  #inflight: Promise<Flight> | undefined;
  /** Whether the last scrape failed (so a failure is logged once, not per scrape). */
  #failing = false;

  constructor(deps: ServerDeps) {
    this.#deps = deps;
  }

  /** The payload for one incoming scrape, joining a scrape already under way. */
  scrape(timeoutMs?: number): Promise<Flight> {
    if (this.#inflight === undefined) {
      this.#inflight = this.#run(timeoutMs).finally(() => {
        this.#inflight = undefined;
      });
    }
    return this.#inflight;
  }

  async #run(timeoutMs: number | undefined): Promise<Flight> {
    const { metrics, log } = this.#deps;
    const pipeline = this.#deps.pipeline();
    let body: readonly Buffer[] | undefined;
    let release: (() => void) | undefined;
    let utf8Names = false;
    if (pipeline !== undefined) {
      const end = metrics.scrapeDuration.startTimer();
      // The payload is transformed piece by piece while it arrives; only the
      // (much smaller) output is held. Time spent transforming is summed.
      let stream: PipelineStream | undefined;
      let transformMs = 0;
      const timed = <T>(fn: () => T): T => {
        const t = performance.now();
        try {
          return fn();
        } finally {
          transformMs += performance.now() - t;
        }
      };
      let failure: { reason: UpstreamErrorReason; message: string } | undefined;
      try {
        const res = await this.#deps.upstream.scrapeEach((format) => {
          const s = pipeline.stream({ format });
          stream = s;
          return (chunk) => timed(() => s.write(chunk));
        }, timeoutMs);
        metrics.upstreamWireBytes.inc(res.wireBytes);
        if (res.ok) {
          metrics.upstreamBytes.set(res.bodyBytes);
          const out = timed(() => stream!.end());
          metrics.recordTransform(out.stats);
          body = out.chunks;
          release = out.release;
          utf8Names = out.utf8Names;
        } else {
          failure = res;
        }
      } catch (err) {
        if (err instanceof ParseError) {
          failure = { reason: "malformed", message: `malformed payload: ${err.message}` };
        } else if (err instanceof InvalidSeriesError) {
          // What Prometheus does when it applies the rules itself: the whole
          // scrape fails (its `up` is 0); here coderd's series go stale alike.
          metrics.ruleErrors.inc({ reason: "invalid_series" });
          failure = { reason: "invalid_series", message: err.message };
        } else {
          failure = { reason: "other", message: `transformation failed: ${String(err)}` };
        }
      } finally {
        stream?.abort();
      }
      if (stream !== undefined) metrics.transformDuration.observe(transformMs / 1000);
      end();
      if (failure !== undefined) {
        body = undefined;
        metrics.upstreamUp.set(0);
        metrics.upstreamErrors.inc({ reason: failure.reason });
        if (!this.#failing) {
          log.warn("upstream scrape failed; serving self-metrics only", {
            upstream: this.#deps.upstream.url.origin + this.#deps.upstream.url.pathname,
            reason: failure.reason,
            error: failure.message,
          });
        }
        this.#failing = true;
      } else {
        metrics.upstreamUp.set(1);
        if (this.#failing) log.info("upstream scrape recovered");
        this.#failing = false;
      }
    } else {
      metrics.upstreamUp.set(0);
    }
    const self = Buffer.from(await metrics.text(), "utf8");
    const quoted = {
      body: body === undefined ? self : Buffer.concat([...body, self]),
      gzipped: undefined,
    };
    // `body` is views on the writer's chunks, which go back to the pipeline
    // for its next scrape: the upstream part is read from the joined copy.
    const upstream =
      body !== undefined && utf8Names
        ? quoted.body.subarray(0, quoted.body.length - self.length)
        : undefined;
    release?.();
    return { upstream, self, renderings: new Map([["allow-utf-8", quoted]]) };
  }
}

export interface ExporterServer {
  server: Server;
  scraper: Scraper;
  /** Starts listening; resolves to the bound address. */
  listen(host: string, port: number): Promise<AddressInfo>;
  /** Stops accepting, finishes in-flight answers, closes idle connections. */
  close(): Promise<void>;
  readonly listening: boolean;
}

export function createExporterServer(deps: ServerDeps): ExporterServer {
  const scraper = new Scraper(deps);
  let listening = false;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    const known = path === "/metrics" || path === "/healthz" || path === "/readyz";
    const reply = (code: number, body: string | Buffer, headers: Record<string, string> = {}) => {
      deps.metrics.requests.inc({ path: known ? path! : "other", code: String(code) });
      res.writeHead(code, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": String(Buffer.byteLength(body)),
        ...headers,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (!known) return reply(404, "404 page not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return reply(405, "method not allowed\n", { allow: "GET, HEAD" });
    }
    if (path === "/healthz") return reply(200, "ok\n");
    if (path === "/readyz") {
      const ready = listening && deps.pipeline() !== undefined;
      return reply(ready ? 200 : 503, ready ? "ready\n" : "no valid configuration loaded\n");
    }
    const timeoutHeader = Number(req.headers["x-prometheus-scrape-timeout-seconds"]);
    // Leave Prometheus a little time to receive the answer.
    const timeoutMs =
      Number.isFinite(timeoutHeader) && timeoutHeader > 0
        ? Math.max(100, timeoutHeader * 1000 - 250)
        : undefined;
    const flight = await scraper.scrape(timeoutMs);
    // Go's Header.Get: the first Accept header only.
    const escaping = negotiateEscaping(req.headersDistinct.accept?.[0]);
    const r = rendering(flight, escaping);
    const contentType = textContentType(escaping);
    if (/\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) {
      r.gzipped ??= gzipAsync(r.body, { level: constants.Z_BEST_SPEED });
      const z = await r.gzipped;
      return reply(200, z, {
        "content-type": contentType,
        "content-encoding": "gzip",
        vary: "Accept, Accept-Encoding",
      });
    }
    return reply(200, r.body, { "content-type": contentType, vary: "Accept, Accept-Encoding" });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      deps.log.error("request failed", { path: req.url?.split("?")[0], error: String(err) });
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("internal error\n");
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;

  return {
    server,
    scraper,
    get listening() {
      return listening;
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          listening = true;
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      listening = false;
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
