// The differential harness: runs the exporter (config validation, parser,
// relabel engine through the real Pipeline — compiled templates and rule by
// rule —, serializer) and promref (Prometheus's own Go code) on the same
// inputs and says how they differ, if they do.
//
// The templated pipeline runs twice: its second scrape of the payload is
// answered from its series cache (model/series-cache.ts) wherever a line was
// seen before, and must store exactly the same as the first.
//
// What is compared, per case:
//   - the rules: both accept them, or both refuse them;
//   - the scrape: both fail it (malformed payload, a series left invalid by
//     the rules), or both succeed and the series the exporter serves, read
//     back by Prometheus's parser, are exactly the samples Prometheus stores
//     when it applies the rules itself: same label sets (empty values gone),
//     values and timestamps, duplicates removed the way the scrape loop and
//     the TSDB head remove them. Order is not compared (renamed series are
//     regrouped under their new family).
//   - the parser on its own: the series, HELP and TYPE Prometheus reads from
//     the payload, in order (parseDifference).
import { parseExporterConfig } from "../../../controller/exporter/config/config.ts";
import {
  type Family,
  InvalidSeriesError,
  ParseError,
} from "../../../controller/exporter/model/model.ts";
import { type ExpositionFormat, parse } from "../../../controller/exporter/parse/parse.ts";
import { formatGoFloat } from "../../../controller/exporter/serialize/serialize.ts";
import { Pipeline } from "../../../controller/exporter/pipeline.ts";
import { type PromCase, type PromEvent, promrefBatch } from "../../support/promref.ts";

export interface DiffCase {
  name: string;
  /** Rules as YAML text, or a list (sent to both sides as JSON, which is YAML). */
  rules: string | readonly unknown[];
  payload: string | Uint8Array;
  contentType?: string;
}

/**
 * Series without a timestamp are stored at the scrape's time: later than any
 * explicit timestamp a test uses, as a real scrape is (see promref README).
 */
const SCRAPE_TIME_MS = 2 ** 62;

function rulesText(c: DiffCase): string {
  return typeof c.rules === "string" ? c.rules : JSON.stringify(c.rules);
}

function formatOf(c: DiffCase): ExpositionFormat {
  return c.contentType?.startsWith("application/openmetrics-text") ? "openmetrics" : "prometheus";
}

type Outcome =
  | { status: "config_error"; message: string }
  | { status: "scrape_error"; message: string }
  | { status: "ok"; series: string[]; scraped?: number };

/** A stored sample as one comparable string: sorted labels, value, timestamp. */
function seriesKey(labels: [string, string][], value: string, ts: number | null): string {
  return JSON.stringify([labels, value, ts]);
}

function prometheusOutcome(events: PromEvent[]): Outcome {
  const result = events.at(-1);
  if (result?.kind !== "result") throw new Error(`promref: no result in ${JSON.stringify(events)}`);
  if (result.error !== null) {
    return result.error.startsWith("config: ")
      ? { status: "config_error", message: result.error }
      : { status: "scrape_error", message: result.error };
  }
  const series: string[] = [];
  for (const e of events) {
    if (e.kind === "series") series.push(seriesKey(e.labels, e.value, e.timestamp));
  }
  return { status: "ok", series: series.sort(), scraped: result.samples_scraped };
}

/** What the exporter does with a case, up to its served body (not read back yet). */
type ExporterRun =
  | { status: "config_error"; message: string }
  | { status: "scrape_error"; message: string }
  | { status: "ok"; body: Buffer; seriesIn: number };

/** How a run feeds the payload: in three pieces (lines straddle them), whole, or not streamed. */
type Feed = "pieces" | "whole" | "transform";

function runPipeline(c: DiffCase, pipeline: Pipeline, feed: Feed): ExporterRun {
  const payload = typeof c.payload === "string" ? Buffer.from(c.payload) : c.payload;
  const options = { format: formatOf(c) };
  try {
    let out: { body: Buffer; stats: { seriesIn: number } };
    if (feed !== "transform") {
      const s = pipeline.stream(options);
      const a = feed === "whole" ? payload.length : Math.floor(payload.length / 3);
      const b = feed === "whole" ? payload.length : Math.floor((2 * payload.length) / 3);
      try {
        s.write(payload.subarray(0, a));
        s.write(payload.subarray(a, b));
        s.write(payload.subarray(b));
        out = s.end();
      } finally {
        s.abort();
      }
    } else {
      out = pipeline.transform(payload, options);
    }
    return { status: "ok", body: Buffer.from(out.body), seriesIn: out.stats.seriesIn };
  } catch (err) {
    if (err instanceof ParseError || err instanceof InvalidSeriesError) {
      return { status: "scrape_error", message: err.message };
    }
    throw err;
  }
}

/**
 * The exporter's runs of a case: templated + streamed, the same pipeline's
 * second scrape (whole, so every line meets the cache), and rule by rule on
 * the whole payload.
 */
function exporterRuns(c: DiffCase): { label: string; run: ExporterRun }[] {
  const config = parseExporterConfig(rulesText(c));
  if (!config.ok) {
    const message = config.errors.map((e) => `${e.path}: ${e.message}`).join("; ");
    return [{ label: "config", run: { status: "config_error", message } }];
  }
  const templated = new Pipeline(config.config);
  return [
    { label: "templates", run: runPipeline(c, templated, "pieces") },
    { label: "second scrape (series cache)", run: runPipeline(c, templated, "whole") },
    {
      label: "rule by rule",
      run: runPipeline(
        c,
        new Pipeline(config.config, undefined, { templates: false }),
        "transform",
      ),
    },
  ];
}

export interface Difference {
  case: DiffCase;
  what: string;
}

/**
 * Runs the cases on both sides (two promref processes in all) and returns
 * every difference found, at most one per case.
 */
export function relabelDifferences(cases: readonly DiffCase[]): Difference[] {
  const prom = promrefBatch(
    cases.map(
      (c): PromCase => ({
        mode: "relabel",
        rules: rulesText(c),
        payload: c.payload,
        contentType: c.contentType,
        scrapeTimeMs: SCRAPE_TIME_MS,
      }),
    ),
  ).map(prometheusOutcome);
  const runs = cases.map(exporterRuns);
  // Read every served body back with Prometheus's parser.
  const bodies: PromCase[] = [];
  const bodyIndex = runs.map((rs) =>
    rs.map(({ run }) =>
      run.status === "ok" ? bodies.push({ mode: "parse", payload: run.body }) - 1 : -1,
    ),
  );
  const readBack = promrefBatch(bodies);
  const diffs: Difference[] = [];
  cases.forEach((c, i) => {
    const want = prom[i]!;
    const rs = runs[i]!;
    for (let k = 0; k < rs.length; k++) {
      const { label, run } = rs[k]!;
      let got: Outcome;
      if (run.status === "ok") {
        const events = readBack[bodyIndex[i]![k]!]!;
        const res = events.at(-1);
        if (res?.kind !== "result" || res.error !== null) {
          diffs.push({
            case: c,
            what: `${label}: Prometheus cannot parse what the exporter serves: ${JSON.stringify(res)}\n${run.body.toString()}`,
          });
          return;
        }
        const series: string[] = [];
        for (const e of events) {
          if (e.kind === "series") series.push(seriesKey(e.labels, e.value, e.timestamp));
        }
        got = { status: "ok", series: series.sort(), scraped: run.seriesIn };
      } else {
        got = run;
      }
      const d = compareOutcomes(want, got);
      if (d !== undefined) {
        const body = run.status === "ok" ? `\nserved:\n${run.body.toString()}` : "";
        diffs.push({ case: c, what: `${label}: ${d}${body}` });
        return;
      }
    }
  });
  return diffs;
}

function compareOutcomes(want: Outcome, got: Outcome): string | undefined {
  if (want.status !== got.status) {
    const say = (o: Outcome) =>
      o.status === "ok" ? `ok (${o.series.length} series)` : `${o.status}: ${o.message}`;
    return `Prometheus: ${say(want)}; exporter: ${say(got)}`;
  }
  if (want.status !== "ok" || got.status !== "ok") return undefined;
  if (want.scraped !== got.scraped) {
    return `series scraped: Prometheus ${want.scraped}, exporter ${got.scraped}`;
  }
  const missing = multisetMinus(want.series, got.series);
  const extra = multisetMinus(got.series, want.series);
  if (missing.length === 0 && extra.length === 0) return undefined;
  return `stored by Prometheus but not served: ${JSON.stringify(missing)}; served but not stored by Prometheus: ${JSON.stringify(extra)}`;
}

function multisetMinus(a: readonly string[], b: readonly string[]): string[] {
  const count = new Map<string, number>();
  for (const x of b) count.set(x, (count.get(x) ?? 0) + 1);
  const out: string[] = [];
  for (const x of a) {
    const n = count.get(x) ?? 0;
    if (n > 0) count.set(x, n - 1);
    else out.push(x);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The parser alone.

/** Prometheus's lvalReplacer: HELP/TYPE names come back from its parser unescaped this way. */
function unreplace(s: string): string {
  return s.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
}

/** The exporter's parse as Prometheus's events: series in order, HELP and TYPE. */
function exporterParseEvents(families: readonly Family[]): string[] {
  const out: string[] = [];
  for (const f of families) {
    if (f.help !== undefined) out.push(JSON.stringify(["help", f.name, f.help]));
    if (f.typed)
      out.push(JSON.stringify(["type", f.name, f.type === "untyped" ? "unknown" : f.type]));
    for (const s of f.samples) {
      const labels: [string, string][] = [["__name__", s.name]];
      for (let i = 0; i < s.labels.length; i += 2) labels.push([s.labels[i]!, s.labels[i + 1]!]);
      labels.sort(([a], [b]) => compareUtf8(a, b));
      out.push(seriesKey(labels, formatGoFloat(s.value), s.timestamp ?? null));
    }
  }
  return out;
}

function prometheusParseEvents(events: PromEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    if (e.kind === "help") out.push(JSON.stringify(["help", unreplace(e.name), e.help]));
    else if (e.kind === "type") out.push(JSON.stringify(["type", unreplace(e.name), e.type]));
    else if (e.kind === "series") out.push(seriesKey(e.labels, e.value, e.timestamp));
  }
  return out;
}

/** Whether a series Prometheus parsed has a label name twice (`__name__` included). */
function repeatsLabelName(events: PromEvent[]): boolean {
  return events.some(
    (e) => e.kind === "series" && new Set(e.labels.map(([n]) => n)).size !== e.labels.length,
  );
}

/** Byte order of the UTF-8 forms (Go's string order), for sorting label names. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Parses each payload with both parsers: both refuse it, or both read the
 * same HELP, TYPE and series. The exporter keeps HELP/TYPE with their family,
 * so those are compared in order among themselves, series among themselves.
 */
export function parseDifferences(
  cases: readonly { name: string; payload: string | Uint8Array; failsAfterParsing?: string }[],
): Difference[] {
  const prom = promrefBatch(cases.map((c) => ({ mode: "parse", payload: c.payload })));
  const diffs: Difference[] = [];
  cases.forEach((c, i) => {
    const events = prom[i]!;
    const res = events.at(-1);
    if (res?.kind !== "result") throw new Error("promref: no result");
    let families: Family[] | undefined;
    let error: string | undefined;
    try {
      families = parse(c.payload);
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      error = err.message;
    }
    const dc: DiffCase = { name: c.name, rules: [], payload: c.payload };
    if (c.failsAfterParsing !== undefined) {
      // Prometheus refuses it later (the relabel differential checks the
      // scrape fails on both sides); the exporter refuses it while parsing.
      if (res.error !== null || families !== undefined) {
        diffs.push({
          case: dc,
          what: `expected Prometheus to parse it and the exporter to refuse it; Prometheus: ${res.error ?? "parses"}, exporter: ${error ?? "parses"}`,
        });
      }
      return;
    }
    if (res.error === null && families === undefined && repeatsLabelName(events)) {
      // Known: Prometheus's parser reads a repeated label name and its TSDB
      // then refuses the series, failing the scrape; the exporter refuses it
      // while parsing (failsAfterParsing; the pipeline comparison checks that
      // the scrape fails on both sides).
      return;
    }
    if ((res.error !== null) !== (families === undefined)) {
      diffs.push({
        case: dc,
        what: `Prometheus: ${res.error ?? "parses"}; exporter: ${error ?? "parses"}`,
      });
      return;
    }
    if (families === undefined) return;
    const want = prometheusParseEvents(events);
    const got = exporterParseEvents(families);
    // Series in order; HELP and TYPE per name in order (the exporter keeps
    // them with their family, so their order relative to others is its own).
    const split = (xs: string[]) => ({
      series: xs.filter((x) => !x.startsWith('["help"') && !x.startsWith('["type"')),
      meta: xs
        .filter((x) => x.startsWith('["help"') || x.startsWith('["type"'))
        .map((x, i) => ({ x, i, key: JSON.stringify((JSON.parse(x) as string[]).slice(0, 2)) }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i))
        .map((e) => e.x),
    });
    const w = split(want);
    const g = split(got);
    for (const part of ["series", "meta"] as const) {
      const a = w[part];
      const b = g[part];
      const at = a.findIndex((x, j) => b[j] !== x);
      if (at >= 0 || a.length !== b.length) {
        const j = at >= 0 ? at : Math.min(a.length, b.length);
        diffs.push({
          case: dc,
          what: `${part} #${j}: Prometheus ${a[j] ?? "(none)"}; exporter ${b[j] ?? "(none)"}`,
        });
        return;
      }
    }
  });
  return diffs;
}

/** A readable report of differences (the first few in full). */
export function report(diffs: readonly Difference[], max = 5): string {
  const shown = diffs.slice(0, max).map((d) => {
    const payload =
      typeof d.case.payload === "string"
        ? JSON.stringify(d.case.payload)
        : `bytes ${Buffer.from(d.case.payload).toString("base64")}`;
    return `- ${d.case.name}\n  rules: ${rulesText(d.case)}\n  payload: ${payload}\n  ${d.what}`;
  });
  const more = diffs.length > max ? `\n… and ${diffs.length - max} more` : "";
  return `${diffs.length} difference(s) from Prometheus:\n${shown.join("\n")}${more}`;
}
