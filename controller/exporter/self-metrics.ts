// The exporter's own metrics (prom-client), appended to every /metrics answer.
// All names start with coder_metrics_exporter_ so they can never collide with
// Coder's families (including the process_* ones from client_golang).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { TransformStats } from "./pipeline.ts";

export const PREFIX = "coder_metrics_exporter_";

export type UpstreamErrorReason =
  | "timeout"
  | "connect"
  | "http_status"
  | "too_large"
  | "malformed"
  | "invalid_series"
  | "other";

export class SelfMetrics {
  readonly registry = new Registry();
  readonly upstreamUp: Gauge;
  readonly upstreamErrors: Counter<"reason">;
  readonly scrapeDuration: Histogram;
  readonly transformDuration: Histogram;
  readonly upstreamBytes: Gauge;
  readonly upstreamWireBytes: Counter;
  readonly seriesIn: Gauge;
  readonly seriesOut: Gauge;
  readonly counterStateSeries: Gauge;
  readonly seriesCached: Gauge;
  readonly cacheSeries: Gauge;
  readonly cacheBytes: Gauge;
  readonly seriesDropped: Counter<"reason">;
  readonly ruleErrors: Counter<"reason">;
  readonly configReloadOk: Gauge;
  readonly configReloadTime: Gauge;
  readonly configReloads: Counter<"result">;
  readonly hashKeyMissing: Gauge;
  readonly requests: Counter<"path" | "code">;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.upstreamUp = new Gauge({
      name: `${PREFIX}upstream_up`,
      help: "1 if the last scrape of coderd's metrics endpoint succeeded and parsed, 0 otherwise.",
      registers,
    });
    this.upstreamErrors = new Counter({
      name: `${PREFIX}upstream_errors_total`,
      help: "Failed upstream scrapes by reason (timeout, connect, http_status, too_large, malformed, invalid_series, other); invalid_series: a series had no metric name or an empty label name after relabeling, which fails a Prometheus scrape too.",
      labelNames: ["reason"],
      registers,
    });
    this.scrapeDuration = new Histogram({
      name: `${PREFIX}upstream_scrape_duration_seconds`,
      help: "Duration of upstream scrapes, from request to parsed and transformed payload.",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.transformDuration = new Histogram({
      name: `${PREFIX}transform_duration_seconds`,
      help: "Time spent parsing, relabeling, aggregating and serializing one upstream payload.",
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.upstreamBytes = new Gauge({
      name: `${PREFIX}upstream_response_bytes`,
      help: "Size of the last upstream payload after decompression.",
      registers,
    });
    this.upstreamWireBytes = new Counter({
      name: `${PREFIX}upstream_received_bytes_total`,
      help: "Bytes received from upstream as sent on the wire (possibly gzip-compressed).",
      registers,
    });
    this.seriesIn = new Gauge({
      name: `${PREFIX}series_in`,
      help: "Series in the last upstream payload.",
      registers,
    });
    this.seriesOut = new Gauge({
      name: `${PREFIX}series_out`,
      help: "Series served from the last upstream payload after transformation.",
      registers,
    });
    this.counterStateSeries = new Gauge({
      name: `${PREFIX}counter_state_series`,
      help: "Input series whose last value is kept so aggregated counters stay counters (bounded by series_limit).",
      registers,
    });
    this.seriesCached = new Gauge({
      name: `${PREFIX}series_cache_hits`,
      help: "Input lines of the last upstream scrape answered from the series cache: seen before in the same family, so not parsed, relabeled or serialized again.",
      registers,
    });
    this.cacheSeries = new Gauge({
      name: `${PREFIX}series_cache_series`,
      help: "Series the series cache holds (what the rules made of each raw series text seen in the last scrapes).",
      registers,
    });
    this.cacheBytes = new Gauge({
      name: `${PREFIX}series_cache_bytes`,
      help: "Bytes of series text the series cache holds, outside the JS heap (bounded; beyond it series are handled afresh each scrape).",
      registers,
    });
    this.seriesDropped = new Counter({
      name: `${PREFIX}series_dropped_total`,
      help: "Series removed by reason (drop_metrics, relabel, aggregated, duplicate, limit); duplicate: a label set already served in the scrape, which Prometheus would not store.",
      labelNames: ["reason"],
      registers,
    });
    this.ruleErrors = new Counter({
      name: `${PREFIX}rule_errors_total`,
      help: "Problems met while applying rules (invalid_target_label, invalid_series, aggregate_unsupported_type); invalid_series fails the scrape.",
      labelNames: ["reason"],
      registers,
    });
    this.configReloadOk = new Gauge({
      name: `${PREFIX}config_last_reload_successful`,
      help: "1 if the last configuration load succeeded, 0 if the file was invalid (the last good one stays).",
      registers,
    });
    this.configReloadTime = new Gauge({
      name: `${PREFIX}config_last_reload_success_timestamp_seconds`,
      help: "Unix time of the last successful configuration load.",
      registers,
    });
    this.configReloads = new Counter({
      name: `${PREFIX}config_reloads_total`,
      help: "Configuration loads by result (success, failure).",
      labelNames: ["result"],
      registers,
    });
    this.hashKeyMissing = new Gauge({
      name: `${PREFIX}pii_hash_key_missing`,
      help: "1 when pii.hash_labels is configured but no hash key was given (those labels are dropped).",
      registers,
    });
    this.requests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: "HTTP requests served by path and status code.",
      labelNames: ["path", "code"],
      registers,
    });
    for (const r of [
      "timeout",
      "connect",
      "http_status",
      "too_large",
      "malformed",
      "invalid_series",
      "other",
    ]) {
      this.upstreamErrors.inc({ reason: r }, 0);
    }
    for (const r of ["drop_metrics", "relabel", "aggregated", "duplicate", "limit"]) {
      this.seriesDropped.inc({ reason: r }, 0);
    }
    for (const r of ["invalid_target_label", "invalid_series", "aggregate_unsupported_type"]) {
      this.ruleErrors.inc({ reason: r }, 0);
    }
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    }
  }

  recordTransform(stats: TransformStats): void {
    this.seriesIn.set(stats.seriesIn);
    this.seriesOut.set(stats.seriesOut);
    this.counterStateSeries.set(stats.counterStateSeries);
    this.seriesCached.set(stats.seriesCached);
    this.cacheSeries.set(stats.cacheSeries);
    this.cacheBytes.set(stats.cacheBytes);
    for (const [reason, n] of Object.entries(stats.dropped)) {
      if (n > 0) this.seriesDropped.inc({ reason }, n);
    }
    for (const [reason, n] of Object.entries(stats.ruleErrors)) {
      if (n > 0) this.ruleErrors.inc({ reason }, n);
    }
  }

  /** Text exposition of the self-metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
