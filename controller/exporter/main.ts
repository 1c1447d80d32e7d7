// `coder-metrics exporter`: the sidecar. Wires flags, logs, self-metrics, the
// upstream client, the config reloader and the HTTP server, and closes them
// in order on SIGTERM/SIGINT.
import type { AddressInfo } from "node:net";
import { parseListen } from "../common/address.ts";
import { type FlagSpec, parseFlags, UsageError, usage } from "../common/flags.ts";
import { createLogger, type Logger } from "../common/log.ts";
import { parseDuration, parseSize } from "../common/units.ts";
import { SelfMetrics } from "./self-metrics.ts";
import { ConfigReloader } from "./serve/reload.ts";
import { createExporterServer, type ExporterServer } from "./serve/server.ts";
import { Upstream } from "./upstream/upstream.ts";

/** Every exporter flag can also be set as CODER_METRICS_EXPORTER_<FLAG>. */
export const EXPORTER_ENV_PREFIX = "CODER_METRICS_EXPORTER_";

export const EXPORTER_FLAGS: readonly FlagSpec[] = [
  {
    name: "upstream",
    help: "coderd's Prometheus endpoint",
    default: "http://127.0.0.1:2112/metrics",
  },
  {
    name: "listen",
    help: "address to serve /metrics, /healthz, /readyz on",
    default: "0.0.0.0:2113",
  },
  {
    name: "config",
    help: "rules file (YAML); missing = serve unchanged",
    default: "/etc/coder-metrics/exporter.yaml",
  },
  { name: "scrape-timeout", help: "deadline for one upstream scrape", default: "10s" },
  {
    name: "max-body-bytes",
    // Payloads are parsed as they stream in: memory follows what is kept, not
    // the payload (~17 KB per workspace with agent stats on: 256MiB ≈ 15,000).
    help: "largest upstream payload accepted (after gunzip)",
    default: "256MiB",
  },
  { name: "hash-key-file", help: "file holding the HMAC key for pii.hash_labels", default: "" },
  {
    name: "config-check-interval",
    help: "how often the config file is re-read besides watching it",
    default: "30s",
  },
];

export interface ExporterOptions {
  upstream: string;
  listen: { host: string; port: number };
  config: string;
  scrapeTimeoutMs: number;
  maxBodyBytes: number;
  hashKeyFile: string | undefined;
  configCheckIntervalMs: number;
  log?: Logger;
  /** Register Node's process metrics (default true; tests turn it off). */
  defaultMetrics?: boolean;
}

export interface RunningExporter {
  address: AddressInfo;
  url: string;
  server: ExporterServer;
  reloader: ConfigReloader;
  metrics: SelfMetrics;
  close(): Promise<void>;
}

/** Starts the exporter in this process. */
export async function startExporter(o: ExporterOptions): Promise<RunningExporter> {
  const log = o.log ?? createLogger({ base: { component: "exporter" } });
  const metrics = new SelfMetrics({ defaultMetrics: o.defaultMetrics });
  const upstream = new Upstream({
    url: o.upstream,
    timeoutMs: o.scrapeTimeoutMs,
    maxBodyBytes: o.maxBodyBytes,
  });
  const reloader = new ConfigReloader({
    configPath: o.config,
    hashKeyFile: o.hashKeyFile,
    intervalMs: o.configCheckIntervalMs,
    log,
    metrics,
  });
  await reloader.start();
  const server = createExporterServer({
    upstream,
    metrics,
    log,
    pipeline: () => reloader.pipeline,
  });
  let address: AddressInfo;
  try {
    address = await server.listen(o.listen.host, o.listen.port);
  } catch (err) {
    reloader.close();
    await upstream.close();
    throw err;
  }
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  log.info("listening", {
    address: `${host}:${address.port}`,
    // origin + path only: never credentials or query tokens in logs.
    upstream: upstream.url.origin + upstream.url.pathname,
    config: o.config,
  });
  return {
    address,
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host === "[::]" ? "[::1]" : host}:${address.port}`,
    server,
    reloader,
    metrics,
    async close() {
      reloader.close();
      await server.close();
      await upstream.close();
    },
  };
}

export function exporterOptionsFromFlags(
  args: readonly string[],
  env = process.env,
): ExporterOptions | "help" {
  const f = parseFlags(args, EXPORTER_FLAGS, { env, envPrefix: EXPORTER_ENV_PREFIX });
  if (f.help) return "help";
  return {
    upstream: f.upstream!,
    listen: parseListen("listen", f.listen!),
    config: f.config!,
    scrapeTimeoutMs: parseDuration("scrape-timeout", f["scrape-timeout"]!),
    maxBodyBytes: parseSize("max-body-bytes", f["max-body-bytes"]!),
    hashKeyFile: f["hash-key-file"] || undefined,
    configCheckIntervalMs: parseDuration("config-check-interval", f["config-check-interval"]!),
  };
}

/** The `exporter` subcommand: runs until SIGTERM/SIGINT. */
export async function runExporter(args: string[]): Promise<number> {
  const log = createLogger({ base: { component: "exporter" } });
  let options: ExporterOptions | "help";
  try {
    options = exporterOptionsFromFlags(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(
      `coder-metrics exporter: ${err.message}\n\n${usage("exporter", SUMMARY, EXPORTER_FLAGS, { envPrefix: EXPORTER_ENV_PREFIX })}`,
    );
    return 2;
  }
  if (options === "help") {
    process.stdout.write(
      usage("exporter", SUMMARY, EXPORTER_FLAGS, { envPrefix: EXPORTER_ENV_PREFIX }),
    );
    return 0;
  }
  let running: RunningExporter;
  try {
    running = await startExporter({ ...options, log });
  } catch (err) {
    log.error("cannot start", { error: (err as Error).message });
    return 1;
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log.info("shutting down", { signal });
  const force = setTimeout(() => {
    log.warn("graceful shutdown timed out");
    process.exit(1);
  }, 10_000);
  force.unref();
  await running.close();
  log.info("stopped");
  return 0;
}

const SUMMARY =
  "Scrapes coderd's Prometheus endpoint, applies relabel/aggregate/PII rules and serves the result.";
