// Scrapes coderd's metrics endpoint: one undici Pool (keep-alive), a deadline
// for the whole request (connect + headers + body), a cap on the bytes read
// from the wire and on the bytes after gunzip (a gzip bomb cannot get past
// it), the body handed on piece by piece as it arrives (gunzipped on the
// way), and content negotiation that prefers the 0.0.4 text format but takes
// OpenMetrics when that is what comes back. Errors are values with a reason;
// an upstream error body is never read into memory nor passed on.
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { errors, Pool } from "undici";
import type { UpstreamErrorReason } from "../self-metrics.ts";
import { type ExpositionFormat, formatFromContentType } from "../parse/parse.ts";

/**
 * Text 0.0.4 preferred; escaping=allow-utf-8 as Prometheus 3 asks, so coderd
 * sends UTF-8 names as they are (quoted) rather than escaped.
 */
export const ACCEPT =
  "text/plain;version=0.0.4;escaping=allow-utf-8;q=0.9,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.1";

export interface UpstreamOptions {
  url: string;
  /** Deadline for a whole scrape, in milliseconds. */
  timeoutMs: number;
  /** Maximum payload size, compressed and decompressed. */
  maxBodyBytes: number;
}

export type UpstreamStreamResult =
  | { ok: true; format: ExpositionFormat; wireBytes: number; bodyBytes: number }
  | { ok: false; reason: UpstreamErrorReason; message: string; wireBytes: number };

class TooLarge extends Error {}

/** Carries an exception of the caller's sink through scrapeEach untouched. */
class SinkError {
  readonly err: unknown;
  constructor(err: unknown) {
    this.err = err;
  }
}

function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("Z_");
}

export class Upstream {
  readonly url: URL;
  readonly #pool: Pool;
  readonly #options: UpstreamOptions;

  constructor(options: UpstreamOptions) {
    this.#options = options;
    this.url = new URL(options.url);
    if (this.url.protocol !== "http:" && this.url.protocol !== "https:") {
      throw new Error(`upstream URL must be http(s): ${options.url}`);
    }
    this.#pool = new Pool(this.url.origin, {
      connections: 4,
      connectTimeout: Math.min(options.timeoutMs, 5000),
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /**
   * One scrape, its body (after gunzip) handed to a sink piece by piece as it
   * arrives, so it is never held whole here. `open` is called once the
   * response looks right, with the format it announces, and returns the sink.
   * An exception from the sink aborts the request and is rethrown as it is.
   * `timeoutMs` may shorten the configured deadline (never lengthen it).
   */
  async scrapeEach(
    open: (format: ExpositionFormat) => (chunk: Buffer) => void,
    timeoutMs?: number,
  ): Promise<UpstreamStreamResult> {
    const deadline = Math.min(timeoutMs ?? this.#options.timeoutMs, this.#options.timeoutMs);
    const max = this.#options.maxBodyBytes;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("deadline exceeded")), deadline);
    let wireBytes = 0;
    let bodyBytes = 0;
    let body: Readable | undefined;
    let gunzip: Readable | undefined;
    try {
      const res = await this.#pool.request({
        path: this.url.pathname + this.url.search,
        method: "GET",
        headers: {
          accept: ACCEPT,
          "accept-encoding": "gzip",
          "user-agent": "coder-metrics-exporter",
          "x-prometheus-scrape-timeout-seconds": String(deadline / 1000),
        },
        signal: abort.signal,
        headersTimeout: deadline,
        bodyTimeout: deadline,
      });
      body = res.body;
      // Destroying the body early (error status, over the limit) must not
      // surface as an unhandled stream error.
      res.body.on("error", () => undefined);
      if (res.statusCode !== 200) {
        res.body.destroy();
        return {
          ok: false,
          reason: "http_status",
          message: `upstream answered HTTP ${res.statusCode}`,
          wireBytes,
        };
      }
      const declared = Number(res.headers["content-length"]);
      if (Number.isFinite(declared) && declared > max) {
        res.body.destroy();
        return tooLarge(max, wireBytes);
      }
      const encoding = String(res.headers["content-encoding"] ?? "").toLowerCase();
      let source: Readable = res.body;
      if (encoding === "gzip") {
        const gz = createGunzip();
        gunzip = gz;
        res.body.on("error", (err) => gz.destroy(err));
        res.body.on("data", (b: Buffer) => {
          wireBytes += b.length;
          if (wireBytes > max) gz.destroy(new TooLarge());
        });
        res.body.pipe(gz);
        source = gz;
      } else if (encoding !== "" && encoding !== "identity") {
        res.body.destroy();
        return {
          ok: false,
          reason: "malformed",
          message: `unsupported content-encoding ${encoding}`,
          wireBytes,
        };
      }
      const ct = res.headers["content-type"];
      const format = formatFromContentType(Array.isArray(ct) ? ct[0] : ct);
      const sink = open(format);
      for await (const chunk of source) {
        const b = chunk as Buffer;
        if (source === res.body) wireBytes += b.length;
        bodyBytes += b.length;
        if (bodyBytes > max) throw new TooLarge();
        try {
          sink(b);
        } catch (err) {
          throw new SinkError(err);
        }
      }
      return { ok: true, format, wireBytes, bodyBytes };
    } catch (err) {
      body?.destroy();
      gunzip?.destroy();
      if (err instanceof SinkError) throw err.err;
      if (err instanceof TooLarge) return tooLarge(max, wireBytes);
      if (isZlibError(err)) {
        return { ok: false, reason: "malformed", message: "invalid gzip body", wireBytes };
      }
      return { ok: false, ...classify(err, abort.signal.aborted, deadline), wireBytes };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.#pool.close().catch(() => undefined);
  }
}

function tooLarge(max: number, wireBytes: number): UpstreamStreamResult & { ok: false } {
  return {
    ok: false,
    reason: "too_large",
    message: `upstream payload exceeds ${max} bytes`,
    wireBytes,
  };
}

function classify(
  err: unknown,
  aborted: boolean,
  deadline: number,
): { reason: UpstreamErrorReason; message: string } {
  if (
    aborted ||
    err instanceof errors.HeadersTimeoutError ||
    err instanceof errors.BodyTimeoutError ||
    err instanceof errors.ConnectTimeoutError
  ) {
    return { reason: "timeout", message: `upstream did not answer within ${deadline}ms` };
  }
  const code = (err as { code?: string }).code;
  if (
    code === "ECONNREFUSED" ||
    code === "ECONNRESET" ||
    code === "ENOTFOUND" ||
    code === "EHOSTUNREACH"
  ) {
    return { reason: "connect", message: `cannot reach upstream (${code})` };
  }
  if (err instanceof errors.SocketError)
    return { reason: "connect", message: "upstream closed the connection" };
  return {
    reason: "other",
    message: `upstream request failed: ${(err as Error).message ?? String(err)}`,
  };
}
