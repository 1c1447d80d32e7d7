// The in-memory shape of one scrape: metric families in exposition order, each
// holding its samples. Parser produces it, relabel/aggregate/pii rewrite it,
// serialize writes it out. Nothing here does I/O.
import type { FamilyContext } from "./series-cache.ts";
import type { Shape } from "./shape.ts";

/** Metric types of the Prometheus text format 0.0.4 ("untyped" = no TYPE or unknown). */
export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

/**
 * One sample line. While a sample is untouched it remembers where its line
 * sits in the scraped text, so the serializer can copy the original bytes
 * (whole runs of lines at once) instead of re-formatting; labels are only
 * materialised when a stage asks for them. Any stage that changes the name or
 * labels calls touch().
 */
export class Sample {
  /** Metric name of this line, e.g. `foo_bucket` in family `foo`. */
  name: string;
  value: number;
  /** Milliseconds since the epoch, when the line carried a timestamp. */
  timestamp: number | undefined;
  /** The scraped text this sample was parsed from (undefined for computed samples). */
  src: string | undefined;
  /** [start, end) of the whole line (with its newline) in `src`; -1 once touched. */
  start: number;
  end: number;
  /** [vStart, vEnd) of the value text in `src`; -1 for a computed value. */
  vStart: number;
  vEnd: number;
  /** Offset just after `{` in `src` for lazily parsed labels; -1 when none/materialised. */
  lStart: number;
  /** Label-name layout and value ranges recorded by the parser (see label-scan.ts). */
  shape: Shape | undefined;
  ranges: Int32Array | undefined;
  rangesAt: number;
  /** Cached `name{labels}` text once the sample was changed (see serialize.ts). */
  series: string | undefined;
  /** What the parser noticed about the labels (EMPTY_LABEL_VALUE, EMPTY_LABEL_NAME). */
  flags: number;
  /**
   * A label value that differs from the scraped text: Prometheus's parser
   * normalizes `le`/`quantile` (see parse.ts normalizeFloatLabel). Label
   * `overrideAt` (exposition order) has value `override`; -1 for none.
   */
  override: string | undefined;
  overrideAt: number;
  /** Hash of the series text as scraped, when flags has RAW_HASH (see SeriesIdentity). */
  rawHash: number;
  /**
   * [keyStart, keyEnd) of the series text in `src` when the line is
   * `series value\n` exactly (one blank, no timestamp): the series cache's
   * key (series-cache.ts). -1 otherwise.
   */
  keyStart: number;
  keyEnd: number;
  /** Materialised labels (use `labels`). */
  #labels: string[] | undefined;
  /** Set once name or labels were changed (the scraped label text no longer applies). */
  #changed = false;

  constructor(name: string, labels: string[] | undefined, value: number, timestamp?: number) {
    this.name = name;
    this.#labels = labels;
    this.value = value;
    this.timestamp = timestamp;
    this.src = undefined;
    this.start = -1;
    this.end = -1;
    this.vStart = -1;
    this.vEnd = -1;
    this.lStart = -1;
    this.shape = undefined;
    this.ranges = undefined;
    this.rangesAt = 0;
    this.series = undefined;
    this.flags = 0;
    this.override = undefined;
    this.overrideAt = -1;
    this.rawHash = 0;
    this.keyStart = -1;
    this.keyEnd = -1;
  }

  /**
   * A sample backed by scraped text (used by the parser). `reuse` is a sample
   * nothing refers to any more, filled in afresh instead of allocating one.
   */
  static fromSource(
    src: string,
    name: string,
    lStart: number,
    value: number,
    vStart: number,
    vEnd: number,
    timestamp: number | undefined,
    start: number,
    end: number,
    shape?: Shape,
    ranges?: Int32Array,
    rangesAt = 0,
    reuse?: Sample,
  ): Sample {
    const labels = lStart < 0 ? EMPTY_LABELS : undefined;
    let s: Sample;
    if (reuse === undefined) {
      s = new Sample(name, labels, value, timestamp);
    } else {
      s = reuse;
      s.name = name;
      s.#labels = labels;
      s.#changed = false;
      s.value = value;
      s.timestamp = timestamp;
      s.series = undefined;
      s.flags = 0;
      s.override = undefined;
      s.overrideAt = -1;
    }
    s.src = src;
    s.keyStart = -1;
    s.keyEnd = -1;
    s.lStart = lStart;
    s.vStart = vStart;
    s.vEnd = vEnd;
    s.start = start;
    s.end = end;
    s.shape = shape;
    s.ranges = ranges;
    s.rangesAt = rangesAt;
    return s;
  }

  /**
   * Label pairs flattened as [name0, value0, name1, value1, …] in exposition
   * order (never `__name__`). Callers may mutate the array only after touch().
   */
  get labels(): string[] {
    let l = this.#labels;
    if (l === undefined) {
      l = materializeLabels(this.src!, this.lStart, this.shape?.names ?? EMPTY_LABELS);
      if (this.overrideAt >= 0) l[2 * this.overrideAt + 1] = this.override!;
      this.#labels = l;
    }
    return l;
  }

  set labels(l: string[]) {
    this.#labels = l;
    this.#changed = true;
    this.start = -1;
    this.series = undefined;
  }

  /** Whether the labels differ from the scraped text (or there is none). */
  get labelsChanged(): boolean {
    return this.#changed;
  }

  /** Marks name/labels as changed: the original line can no longer be reused. */
  touch(): void {
    this.series = undefined;
    this.#changed = true;
    if (this.start >= 0) {
      this.start = -1;
      // Materialised arrays are private to the sample; the shared empty one is not.
      const l = this.labels;
      if (l === EMPTY_LABELS) this.#labels = [];
    }
  }

  /** Sets a computed value. */
  setValue(v: number): void {
    this.value = v;
    this.vStart = -1;
    this.vEnd = -1;
  }
}

const EMPTY_LABELS: string[] = [];

/** Flags the parser sets on a sample (Sample.flags). */
/** A label has an empty value: it is not part of the series (Prometheus drops it). */
export const EMPTY_LABEL_VALUE = 1;
/** A quoted label name is empty: an invalid series unless a rule removes it. */
export const EMPTY_LABEL_NAME = 2;
/**
 * The line has a quoted name or blanks before the name, so its names may not
 * be legacy-valid: it cannot be copied as is to a scraper that needs them escaped.
 */
export const UTF8_NAMES = 4;
/** `rawHash` holds a hash of the line's series text (name and labels as written). */
export const RAW_HASH = 8;

/**
 * Parses an already validated label section starting just after `{`. Names
 * equal to the layout's interned ones are taken from there, not sliced anew.
 * Quoted names are unquoted; a quoted string followed by `,` or `}` is the
 * metric name and skipped.
 */
function materializeLabels(s: string, at: number, known: readonly string[]): string[] {
  const out: string[] = [];
  if (at < 0) return out;
  let p = at;
  for (;;) {
    let c = s.charCodeAt(p);
    while (c === 32 || c === 9) c = s.charCodeAt(++p);
    if (c === 125) break; // }
    const ns = p;
    const cand = known[out.length >> 1];
    let name: string;
    if (c === 34) {
      // Quoted: to the closing quote (escapes are validated already).
      c = s.charCodeAt(++p);
      while (c !== 34) {
        if (c === 92) p++;
        c = s.charCodeAt(++p);
      }
      const ne = ++p;
      c = s.charCodeAt(p);
      while (c === 32 || c === 9) c = s.charCodeAt(++p);
      if (c === 44 || c === 125) {
        // The metric name inside the braces.
        if (c === 44) p++;
        continue;
      }
      const raw = s.slice(ns + 1, ne - 1);
      name = raw.indexOf("\\") >= 0 ? unescapeLabelValue(raw) : raw;
      if (cand === name) name = cand;
    } else {
      while (c !== 61 && c !== 32 && c !== 9) c = s.charCodeAt(++p);
      name =
        cand !== undefined && cand.length === p - ns && s.startsWith(cand, ns)
          ? cand
          : s.slice(ns, p);
    }
    while (c !== 34) c = s.charCodeAt(++p); // to the opening quote
    const vs = ++p;
    let escaped = false;
    c = s.charCodeAt(p);
    while (c !== 34) {
      if (c === 92) {
        escaped = true;
        p++;
      }
      c = s.charCodeAt(++p);
    }
    const raw = s.slice(vs, p);
    out.push(name, escaped ? unescapeLabelValue(raw) : raw);
    c = s.charCodeAt(++p);
    while (c === 32 || c === 9) c = s.charCodeAt(++p);
    if (c === 44) p++;
  }
  return out;
}

/** Label value unescaping as Prometheus's lvalReplacer: \\ \" \n only. */
export function unescapeLabelValue(raw: string): string {
  let out = "";
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) !== 92) continue;
    const d = raw.charCodeAt(i + 1);
    let rep: string | undefined;
    if (d === 92) rep = "\\";
    else if (d === 34) rep = '"';
    else if (d === 110) rep = "\n";
    if (rep !== undefined) {
      out += raw.slice(last, i) + rep;
      last = i + 2;
    }
    i++; // an escape pair is consumed either way
  }
  return out + raw.slice(last);
}

export interface Family {
  name: string;
  type: MetricType;
  /** Whether a `# TYPE` line was present (an untyped family may have none). */
  typed: boolean;
  /** Unescaped HELP text, or undefined when there was no HELP line. */
  help: string | undefined;
  samples: Sample[];
  /** What the series cache knows this family by (set by the parser when it has a cache). */
  context?: FamilyContext;
}

/** A malformed exposition: which line, and why. The only error the parser throws. */
export class ParseError extends Error {
  readonly line: number;
  readonly reason: string;
  constructor(line: number, reason: string) {
    super(`line ${line}: ${reason}`);
    this.name = "ParseError";
    this.line = line;
    this.reason = reason;
  }
}

/**
 * A series left without a metric name, or with an empty label name, after
 * relabeling (by the rules, or as scraped): Prometheus fails the whole scrape
 * for it (scrape/scrape_append_v2.go), so the exporter fails the
 * transformation. The message names the metric as scraped, never label values.
 */
export class InvalidSeriesError extends Error {
  readonly metric: string;
  constructor(metric: string, reason: string) {
    super(`invalid series of metric ${JSON.stringify(metric)} after relabeling: ${reason}`);
    this.name = "InvalidSeriesError";
    this.metric = metric;
  }
}

/**
 * Legacy (text format 0.0.4) metric-name validity, model.LegacyValidation:
 * [a-zA-Z_:][a-zA-Z0-9_:]*. Names that fail it are quoted or escaped on output.
 */
export function isValidMetricName(n: string): boolean {
  if (n.length === 0) return false;
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i);
    const ok =
      (c >= 97 && c <= 122) ||
      (c >= 65 && c <= 90) ||
      c === 95 ||
      c === 58 ||
      (c >= 48 && c <= 57 && i > 0);
    if (!ok) return false;
  }
  return true;
}

/** Legacy label-name validity, as model.LabelName.IsValid with LegacyValidation: [a-zA-Z_][a-zA-Z0-9_]*. */
export function isValidLabelName(n: string): boolean {
  if (n.length === 0) return false;
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i);
    const ok =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (c >= 48 && c <= 57 && i > 0);
    if (!ok) return false;
  }
  return true;
}

/** Number of samples over all families. */
export function countSamples(families: readonly Family[]): number {
  let n = 0;
  for (const f of families) n += f.samples.length;
  return n;
}
