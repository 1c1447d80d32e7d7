// The exporter's configuration file. Two forms are accepted:
//
// 1. A YAML list of Prometheus `metric_relabel_configs` rules (snake_case keys,
//    exactly as in prometheus.yml):
//
//      - source_labels: [__name__]
//        regex: go_.*
//        action: drop
//
// 2. A mapping; every key is optional:
//
//      metric_relabel_configs: [ ...rules as above... ]
//      drop_metrics: [ "go_*", "coderd_db_*" ]   # metric family names / globs (* and ?)
//      aggregate:                                  # first matching rule wins per family
//        - metrics: [ "coderd_agentstats_*" ]      # family names / globs
//          op: sum                                 # sum | max | min | count (default sum)
//          by: [ template_name ]                   # or `without: [...]`; neither = one total
//          counter_mode: stateful                  # stateful | stateless (default stateful)
//      counter_state_ttl: 15m                      # forget a counter series unseen this long
//      pii:
//        hash_labels: [ username, workspace_owner ]  # HMAC-SHA256(key, value), hex, truncated
//        drop_labels: [ owner_email ]
//        hash_length: 16                           # hex characters kept, 8..64 (default 16)
//      series_limit: 200000                        # serve at most N series (0 = no limit)
//      presets: [ drop_deprecated, per_template ]
//
// The pipeline runs in this order: drop_metrics (+ presets) → relabel →
// aggregate → pii → series_limit. Histograms are aggregated bucket-wise (sum
// of `_bucket` per `le`, `_sum`, `_count`); summaries keep only `_sum` and
// `_count` when aggregated; histograms and summaries only support `sum`.
// A `sum` of counters, histograms and summaries is a running total that only
// grows while the exporter runs (counter_mode: stateful, see
// aggregate/counter-state.ts): series that disappear or reset do not make it
// go down. `counter_mode: stateless` gives the plain per-scrape sum instead.
// counter_state_ttl (default 15m) is how long the exporter remembers a series
// it no longer sees (and at least 3 scrapes).
//
// Presets (both read controller/coder/catalog.ts):
//   drop_deprecated  drop the families Coder has deprecated whose replacement every covered
//                    Coder release serves, e.g. coderd_api_workspace_latest_build_total.
//   per_template     aggregate every family whose series carry a per-workspace label
//                    (PER_WORKSPACE_LABELS: workspace_name, username, workspace_owner,
//                    agent_name, …), known to the catalogue or not, away from those labels
//                    and template_version: by max for the families the catalogue marks
//                    (latencies), by sum otherwise (counters stay counters). It selects by
//                    labels, not names, because every Coder release adds such families
//                    (the ~120 agent-forwarded ones among them). Applied after the user's
//                    own aggregate rules.
//
// The HMAC key is never part of this file: it comes from --hash-key-file or the
// CODER_METRICS_EXPORTER_HASH_KEY environment variable. Without a key, labels in
// hash_labels are dropped instead (never served in clear).
//
// parseExporterConfig/validateExporterConfig are pure: the controller calls
// them to put errors (with a path and a message) into a custom resource status.
import { isMap, parseDocument } from "yaml";
import { parseDuration } from "../../common/units.ts";
import {
  CATALOG,
  droppableDeprecated,
  PER_TEMPLATE_REMOVED_LABELS,
  PER_WORKSPACE_LABELS,
} from "../../coder/catalog.ts";
import { GlobSet, isValidGlob } from "./glob.ts";
import {
  type ConfigError,
  compileRelabelRule,
  isValidUtf8Name,
  type RelabelRule,
} from "../relabel/relabel.ts";
import { goScalarsInRules } from "../relabel/yaml-scalars.ts";

export type { ConfigError } from "../relabel/relabel.ts";

export type AggregateOp = "sum" | "max" | "min" | "count";
/**
 * How a `sum` treats counters, histograms and summaries: "stateful" keeps a
 * running total per output series that only grows (counter semantics across
 * series coming and going); "stateless" sums what this scrape holds.
 */
export type CounterMode = "stateful" | "stateless";

export interface AggregateRule {
  metrics: GlobSet;
  op: AggregateOp;
  /** Labels kept (`by`), or undefined when `without` is used. */
  by: readonly string[] | undefined;
  /** Labels removed (`without`). */
  without: readonly string[] | undefined;
  /**
   * When set, the rule applies only to a family whose series carry one of
   * these labels (judged on its first series): how a preset selects families
   * by labels rather than by names. Not part of the file format.
   */
  ifLabels?: readonly string[];
  counterMode: CounterMode;
  /**
   * What the rule aggregates and how, as text: equal keys aggregate alike, so
   * counter state can outlive a configuration reload that keeps the rule.
   */
  key: string;
}

/**
 * The rule that aggregates family `name` (the first that matches), given the
 * label names of its first series; `labelNames` is called only when a rule
 * selects by labels.
 */
export function aggregateRuleFor(
  rules: readonly AggregateRule[],
  name: string,
  labelNames: () => readonly string[],
): AggregateRule | undefined {
  let names: readonly string[] | undefined;
  for (const r of rules) {
    if (!r.metrics.matches(name)) continue;
    if (r.ifLabels === undefined) return r;
    names ??= labelNames();
    if (r.ifLabels.some((l) => names!.includes(l))) return r;
  }
  return undefined;
}

export interface PiiConfig {
  hashLabels: readonly string[];
  dropLabels: readonly string[];
  hashLength: number;
}

export const PRESETS = ["drop_deprecated", "per_template"] as const;
export type Preset = (typeof PRESETS)[number];

export interface ExporterConfig {
  relabel: readonly RelabelRule[];
  dropMetrics: GlobSet;
  aggregate: readonly AggregateRule[];
  pii: PiiConfig;
  /** 0 = unlimited. */
  seriesLimit: number;
  presets: readonly Preset[];
  /** How long counter state of a series no longer seen is kept, milliseconds. */
  counterStateTtlMs: number;
  /**
   * The relabel rules as text: counter state is keyed by relabeled series, so
   * it is only carried over a reload when these are unchanged.
   */
  relabelKey: string;
}

/** counter_state_ttl when not set. */
export const DEFAULT_COUNTER_STATE_TTL_MS = 15 * 60_000;

export type ConfigResult =
  | { ok: true; config: ExporterConfig }
  | { ok: false; errors: ConfigError[] };

/** The configuration that changes nothing. */
export function identityConfig(): ExporterConfig {
  return {
    relabel: [],
    dropMetrics: new GlobSet([]),
    aggregate: [],
    pii: { hashLabels: [], dropLabels: [], hashLength: 16 },
    seriesLimit: 0,
    presets: [],
    counterStateTtlMs: DEFAULT_COUNTER_STATE_TTL_MS,
    relabelKey: "[]",
  };
}

/** Parses and validates the YAML text of a configuration file. */
export function parseExporterConfig(text: string): ConfigResult {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => ({
        path: "",
        message: `YAML syntax error${e.linePos ? ` at line ${e.linePos[0].line}` : ""}: ${e.message.split("\n")[0]}`,
      })),
    };
  }
  // Rules read as Prometheus reads them (plain scalars, YAML 1.1 integers).
  const root = doc.contents;
  goScalarsInRules(isMap(root) ? root.get("metric_relabel_configs", true) : root);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, errors: [{ path: "", message: `YAML: ${(err as Error).message}` }] };
  }
  return validateExporterConfig(value);
}

const TOP_KEYS = new Set([
  "metric_relabel_configs",
  "drop_metrics",
  "aggregate",
  "pii",
  "series_limit",
  "presets",
  "counter_state_ttl",
]);
const TOP_HINTS: Record<string, string> = {
  metricRelabelConfigs: "metric_relabel_configs",
  metricRelabelings: "metric_relabel_configs",
  dropMetrics: "drop_metrics",
  seriesLimit: "series_limit",
  counterStateTTL: "counter_state_ttl",
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The relabel rules as text (a hashmod modulus is a bigint), to tell whether a reload changed them. */
function relabelKey(rules: unknown): string {
  return JSON.stringify(rules, (_key, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
}

/** Validates an already-parsed configuration value (list or mapping form). */
export function validateExporterConfig(value: unknown): ConfigResult {
  const errors: ConfigError[] = [];
  const config = identityConfig();
  if (value === null || value === undefined) return { ok: true, config };

  if (Array.isArray(value)) {
    config.relabel = relabelRules(value, "", errors);
    config.relabelKey = relabelKey(value);
    return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
  }
  if (!isRecord(value)) {
    return {
      ok: false,
      errors: [{ path: "", message: "configuration must be a list of relabel rules or a mapping" }],
    };
  }
  for (const key of Object.keys(value)) {
    if (!TOP_KEYS.has(key)) {
      const hint = TOP_HINTS[key];
      errors.push({
        path: key,
        message: `unknown field "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`,
      });
    }
  }
  if (value.metric_relabel_configs != null) {
    if (!Array.isArray(value.metric_relabel_configs)) {
      errors.push({ path: "metric_relabel_configs", message: "must be a list of relabel rules" });
    } else {
      config.relabel = relabelRules(value.metric_relabel_configs, "metric_relabel_configs", errors);
      config.relabelKey = relabelKey(value.metric_relabel_configs);
    }
  }
  const drops = globList(value.drop_metrics, "drop_metrics", errors);
  const presets = presetList(value.presets, errors);
  config.presets = presets;
  if (presets.includes("drop_deprecated")) drops.push(...droppableDeprecated());
  config.dropMetrics = new GlobSet(drops);
  config.aggregate = aggregateRules(value.aggregate, errors);
  if (presets.includes("per_template")) config.aggregate = [...config.aggregate, ...perTemplate()];
  config.pii = piiConfig(value.pii, errors);
  if (value.series_limit != null) {
    const n = value.series_limit;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      errors.push({
        path: "series_limit",
        message: "must be a non-negative integer (0 = no limit)",
      });
    } else {
      config.seriesLimit = n;
    }
  }
  if (value.counter_state_ttl != null) {
    const ttl = durationMs(value.counter_state_ttl);
    if (ttl === undefined) {
      errors.push({
        path: "counter_state_ttl",
        message: "must be a positive duration such as 15m, 1h or 90s",
      });
    } else {
      config.counterStateTtlMs = ttl;
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}

/** A duration as the CRD writes it ("15m", "1h30m"); undefined when it is not one. */
function durationMs(v: unknown): number | undefined {
  if (typeof v !== "string" || !/^(\d+(ms|s|m|h))+$/.test(v)) return undefined;
  try {
    return parseDuration("counter_state_ttl", v);
  } catch {
    return undefined;
  }
}

function relabelRules(list: unknown[], prefix: string, errors: ConfigError[]): RelabelRule[] {
  const rules: RelabelRule[] = [];
  list.forEach((raw, i) => {
    const r = compileRelabelRule(raw, `${prefix}[${i}]`);
    if (r.ok) rules.push(r.rule);
    else errors.push(...r.errors);
  });
  return rules;
}

function stringList(
  v: unknown,
  path: string,
  errors: ConfigError[],
  check: (s: string) => string | undefined,
): string[] {
  if (v == null) return [];
  if (!Array.isArray(v)) {
    errors.push({ path, message: "must be a list of strings" });
    return [];
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    if (typeof item !== "string") {
      errors.push({ path: `${path}[${i}]`, message: "must be a string" });
      return;
    }
    const bad = check(item);
    if (bad !== undefined) errors.push({ path: `${path}[${i}]`, message: bad });
    else out.push(item);
  });
  return out;
}

function globList(v: unknown, path: string, errors: ConfigError[]): string[] {
  return stringList(v, path, errors, (s) =>
    isValidGlob(s)
      ? undefined
      : `${JSON.stringify(s)} is not a metric name or glob (letters, digits, _ : * ? only)`,
  );
}

function labelList(v: unknown, path: string, errors: ConfigError[]): string[] {
  // UTF-8 label names, as Prometheus 3 validates them (`http.route` is one).
  return stringList(v, path, errors, (s) =>
    isValidUtf8Name(s) && s !== "__name__"
      ? undefined
      : `${JSON.stringify(s)} is not a valid label name`,
  );
}

function presetList(v: unknown, errors: ConfigError[]): Preset[] {
  return stringList(v, "presets", errors, (s) =>
    (PRESETS as readonly string[]).includes(s)
      ? undefined
      : `unknown preset ${JSON.stringify(s)} (known: ${PRESETS.join(", ")})`,
  ) as Preset[];
}

const OPS: readonly AggregateOp[] = ["sum", "max", "min", "count"];
const COUNTER_MODES: readonly CounterMode[] = ["stateful", "stateless"];
const AGG_KEYS = new Set(["metrics", "op", "by", "without", "counter_mode"]);

function aggregateRules(v: unknown, errors: ConfigError[]): AggregateRule[] {
  if (v == null) return [];
  if (!Array.isArray(v)) {
    errors.push({ path: "aggregate", message: "must be a list of aggregation rules" });
    return [];
  }
  const out: AggregateRule[] = [];
  v.forEach((raw, i) => {
    const path = `aggregate[${i}]`;
    if (!isRecord(raw)) {
      errors.push({ path, message: "aggregation rule must be a mapping" });
      return;
    }
    const before = errors.length;
    for (const key of Object.keys(raw)) {
      if (!AGG_KEYS.has(key))
        errors.push({ path: `${path}.${key}`, message: `unknown field "${key}"` });
    }
    const metrics = globList(raw.metrics, `${path}.metrics`, errors);
    if (raw.metrics == null || (Array.isArray(raw.metrics) && raw.metrics.length === 0)) {
      errors.push({
        path: `${path}.metrics`,
        message: "at least one metric name or glob is required",
      });
    }
    let op: AggregateOp = "sum";
    if (raw.op != null) {
      if (typeof raw.op === "string" && (OPS as readonly string[]).includes(raw.op)) {
        op = raw.op as AggregateOp;
      } else {
        errors.push({ path: `${path}.op`, message: `must be one of ${OPS.join(", ")}` });
      }
    }
    if (raw.by != null && raw.without != null) {
      errors.push({ path, message: "use either 'by' or 'without', not both" });
    }
    const by = raw.by != null ? labelList(raw.by, `${path}.by`, errors) : undefined;
    const without =
      raw.without != null ? labelList(raw.without, `${path}.without`, errors) : undefined;
    let counterMode: CounterMode = "stateful";
    if (raw.counter_mode != null) {
      if (
        typeof raw.counter_mode === "string" &&
        (COUNTER_MODES as readonly string[]).includes(raw.counter_mode)
      ) {
        counterMode = raw.counter_mode as CounterMode;
      } else {
        errors.push({
          path: `${path}.counter_mode`,
          message: `must be one of ${COUNTER_MODES.join(", ")}`,
        });
      }
    }
    if (errors.length > before) return;
    out.push(
      aggregateRule(
        metrics,
        op,
        without === undefined ? (by ?? []) : undefined,
        without,
        counterMode,
      ),
    );
  });
  return out;
}

function aggregateRule(
  metrics: string[],
  op: AggregateOp,
  by: readonly string[] | undefined,
  without: readonly string[] | undefined,
  counterMode: CounterMode,
  ifLabels?: readonly string[],
): AggregateRule {
  return {
    metrics: new GlobSet(metrics),
    op,
    by,
    without,
    counterMode,
    ...(ifLabels === undefined ? {} : { ifLabels }),
    key: JSON.stringify({ metrics, op, by, without, counterMode, ifLabels }),
  };
}

const PII_KEYS = new Set(["hash_labels", "drop_labels", "hash_length"]);

function piiConfig(v: unknown, errors: ConfigError[]): PiiConfig {
  const pii: PiiConfig = { hashLabels: [], dropLabels: [], hashLength: 16 };
  if (v == null) return pii;
  if (!isRecord(v)) {
    errors.push({ path: "pii", message: "must be a mapping" });
    return pii;
  }
  for (const key of Object.keys(v)) {
    if (!PII_KEYS.has(key)) errors.push({ path: `pii.${key}`, message: `unknown field "${key}"` });
  }
  pii.hashLabels = labelList(v.hash_labels, "pii.hash_labels", errors);
  pii.dropLabels = labelList(v.drop_labels, "pii.drop_labels", errors);
  for (const l of pii.hashLabels) {
    if (pii.dropLabels.includes(l)) {
      errors.push({ path: "pii", message: `label "${l}" is in both hash_labels and drop_labels` });
    }
  }
  if (v.hash_length != null) {
    const n = v.hash_length;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 8 || n > 64) {
      errors.push({ path: "pii.hash_length", message: "must be an integer from 8 to 64" });
    } else {
      pii.hashLength = n;
    }
  }
  return pii;
}

function perTemplate(): AggregateRule[] {
  const without = [...PER_TEMPLATE_REMOVED_LABELS];
  const ifLabels = [...PER_WORKSPACE_LABELS];
  const byMax = CATALOG.filter((m) => m.perTemplate === "max").map((m) => m.name);
  return [
    aggregateRule(byMax, "max", undefined, without, "stateful", ifLabels),
    aggregateRule(["*"], "sum", undefined, without, "stateful", ifLabels),
  ];
}
