// Writes families as Prometheus text exposition 0.0.4, the way client_golang's
// expfmt does: HELP then TYPE, label values escaped (\\ \" \n), HELP escaped
// (\\ \n), values in Go's shortest 'g' form (1e+06, NaN, +Inf), timestamps as
// integer milliseconds. Samples whose value is untouched are written with the
// exact text upstream sent.
//
// Names that are not legacy-valid (UTF-8 names such as `http.route`) are
// written quoted, as expfmt does with escaping=allow-utf-8: `{"a.b",x="1"}`,
// `"c:d"="1"`, `# HELP "a.b" …`. Unlike expfmt, label names are checked with
// the label rule, so `c:d` is quoted (expfmt writes it bare, which Prometheus's
// parser refuses). For scrapers that did not ask for UTF-8 names,
// escapeExposition rewrites such names as client_golang would (escaping=underscores
// by default).
import {
  formatGoFloat,
  formatOpenMetricsFloat,
  isCanonicalFloat,
  parseGoFloatFull,
} from "../model/float.ts";
import {
  type Family,
  isValidLabelName,
  isValidMetricName,
  type MetricType,
  type Sample,
  UTF8_NAMES,
} from "../model/model.ts";
import { parse } from "../parse/parse.ts";

export { formatGoFloat };

/** The name escaping schemes of the text format's Content-Type (model.EscapingScheme). */
export type Escaping = "allow-utf-8" | "underscores" | "dots" | "values";

const NEEDS_HELP_ESCAPE = /[\\\n]/;

export function escapeLabelValue(v: string): string {
  // A plain loop beats a regex test on the short values labels usually have.
  let plain = true;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 92 || c === 34 || c === 10) {
      plain = false;
      break;
    }
  }
  if (plain) return v;
  return v.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

export function escapeHelp(v: string): string {
  if (!NEEDS_HELP_ESCAPE.test(v)) return v;
  return v.replace(/[\\\n]/g, (c) => (c === "\\" ? "\\\\" : "\\n"));
}

/** A metric name as written: bare when legacy-valid, else quoted. */
function metricName(n: string): string {
  return isValidMetricName(n) ? n : `"${escapeLabelValue(n)}"`;
}

/** A label name as written: bare when legacy-valid, else quoted. */
function labelName(n: string): string {
  return isValidLabelName(n) ? n : `"${escapeLabelValue(n)}"`;
}

/**
 * model.EscapeName for a name that is not legacy-valid (legacy-valid names
 * are written unchanged, as model.EscapeMetricFamily leaves them). A label
 * name is escaped by the label rule (no `:`), so the result is always a
 * valid name for the 0.0.4 text format.
 */
export function escapeName(name: string, scheme: Escaping, label: boolean): string {
  if (scheme === "allow-utf-8" || (label ? isValidLabelName(name) : isValidMetricName(name))) {
    return name;
  }
  let out = scheme === "values" ? "U__" : "";
  let i = 0; // byte index, as Go's range over a string
  for (const ch of name) {
    const c = ch.codePointAt(0)!;
    const valid =
      (c >= 97 && c <= 122) ||
      (c >= 65 && c <= 90) ||
      c === 95 ||
      (c === 58 && !label) ||
      (c >= 48 && c <= 57 && i > 0);
    if (scheme === "underscores") out += valid ? ch : "_";
    else if (c === 95) out += "__";
    else if (scheme === "dots" && c === 46) out += "_dot_";
    else if (valid) out += ch;
    else if (scheme === "dots") out += "__";
    else out += `_${c.toString(16)}_`;
    i += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return out;
}

/**
 * The series part of a changed or computed sample's line — `name{a="1",b="2"}`
 * in label order, or `{"a.b",a="1"}` for a UTF-8 name — cached on the sample.
 */
export function seriesText(s: Sample): string {
  if (s.series !== undefined) return s.series;
  const t = seriesTextAs(s.name, s.labels, "allow-utf-8");
  s.series = t;
  return t;
}

/** The series text of `name` and `labels` with names escaped by `scheme`. */
function seriesTextAs(name: string, l: readonly string[], scheme: Escaping): string {
  let t: string;
  let sep: string;
  if (isValidMetricName(name)) {
    t = name;
    if (l.length === 0) return t;
    t += "{";
    sep = "";
  } else {
    t = `{${metricName(name)}`;
    sep = ",";
  }
  for (let i = 0; i < l.length; i += 2) {
    const n = scheme === "allow-utf-8" ? l[i]! : escapeName(l[i]!, scheme, true);
    t += `${sep}${labelName(n)}="${escapeLabelValue(l[i + 1]!)}"`;
    sep = ",";
  }
  return `${t}}`;
}

/** Whether a sample's names need quoting or escaping (see UTF8_NAMES). */
export function hasUtf8Names(s: Sample): boolean {
  if (s.start >= 0) return (s.flags & UTF8_NAMES) !== 0;
  if (!isValidMetricName(s.name)) return true;
  const l = s.labels;
  for (let i = 0; i < l.length; i += 2) if (!isValidLabelName(l[i]!)) return true;
  return false;
}

/**
 * Whether Prometheus's parser reads every `le` (histogram) or `quantile`
 * (summary) of the family back as it is: untouched lines were normalized
 * when parsed, a value a rule set may not be in FormatOpenMetricsFloat form.
 */
function floatLabelsStable(f: Family): boolean {
  for (const s of f.samples) if (!floatLabelStable(s, f.type)) return false;
  return true;
}

/** Whether a sample of a family of `type` is read back as it is (see floatLabelsStable). */
export function floatLabelStable(s: Sample, type: MetricType): boolean {
  const label = type === "histogram" ? "le" : type === "summary" ? "quantile" : undefined;
  if (label === undefined || s.start >= 0) return true;
  const l = s.labels;
  for (let i = 0; i < l.length; i += 2) {
    if (l[i] !== label) continue;
    const v = l[i + 1]!;
    if (isCanonicalFloat(v, 0, v.length)) return true;
    const x = parseGoFloatFull(v);
    return x === undefined || formatOpenMetricsFloat(x) === v;
  }
  return true;
}

/**
 * A finished line (see the pipeline's lines): its series text is
 * blk[keyAt, keyAt+common) then blk[keyAt+keyLen, +restLen), the rest of the
 * line (value, newline) is elsewhere.
 */
export interface SeriesText {
  blk: Uint8Array;
  keyAt: number;
  keyLen: number;
  common: number;
  restLen: number;
  utf8: boolean;
  unstableLe: boolean;
  unstableQuantile: boolean;
}

/**
 * Copies n bytes: a loop for short pieces, Buffer's copy (a call into C++,
 * ~70 ns whatever the size, where a loop takes ~1 ns a byte) for long ones.
 */
function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, from: number, n: number): void {
  if (n > 80) {
    copyRange.call(src, dst, at, from, from + n);
    return;
  }
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
}

const copyRange = Buffer.prototype.copy as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  sourceStart: number,
  sourceEnd: number,
) => number;

/** See ExpositionWriter.state. */
export interface WriterState {
  lastType: MetricType | undefined;
  utf8Names: boolean;
}

const SUFFIXES: Partial<Record<MetricType, readonly string[]>> = {
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

/** Size of the output's pieces (see ExpositionWriter). */
export const OUTPUT_CHUNK = 1 << 20;

/**
 * Output memory a reader gave back (TransformResult.release), for the next
 * output to write into: writing into memory written before is much cheaper
 * than into fresh pages (a large new buffer is page faults all the way).
 */
export class ChunkPool {
  readonly #free: Buffer[] = [];

  /** A chunk of at least `min` bytes, or undefined. */
  take(min: number): Buffer | undefined {
    const free = this.#free;
    for (let i = free.length - 1; i >= 0; i--) {
      const c = free[i]!;
      if (c.length < min) continue;
      free[i] = free.at(-1)!;
      free.pop();
      return c;
    }
    return undefined;
  }

  give(chunk: Buffer): void {
    this.#free.push(chunk);
  }

  /** Keeps at most `n` chunks (the output shrank). */
  keep(n: number): void {
    if (this.#free.length > n) this.#free.length = n;
  }
}

/**
 * Writes exposition text into a list of 1 MiB chunks: families of samples
 * (lines of untouched samples copied from the scraped text, adjacent lines as
 * one run), or lines the pipeline finished already (writeLines, line).
 * Joining millions of small strings into one and encoding it afterwards costs
 * more than the whole parse; a buffer grown by doubling copies its content
 * again at every step and touches twice the memory; chunks do neither (the
 * server joins them once, with its self-metrics).
 */
export class ExpositionWriter {
  /** Chunks written before the current one, and how much of each is used. */
  readonly #chunks: Buffer[] = [];
  readonly #used: number[] = [];
  /** Bytes in #chunks. */
  #base = 0;
  #buf: Buffer;
  #len = 0;
  readonly #pool: ChunkPool | undefined;
  /** How names that are not legacy-valid are written (allow-utf-8: quoted). */
  readonly #escaping: Escaping;
  /** The type of the last TYPE line written (see writeFamily). */
  #lastType: MetricType | undefined;
  /** Whether a name that is not legacy-valid was written (quoted). */
  utf8Names = false;

  /**
   * The first chunk is `initialSize` bytes (a small output stays in one small
   * piece), later ones OUTPUT_CHUNK; `pool`: chunks to write into first.
   */
  constructor(escaping: Escaping = "allow-utf-8", initialSize = 64 * 1024, pool?: ChunkPool) {
    this.#escaping = escaping;
    this.#pool = pool;
    const first = Math.min(OUTPUT_CHUNK, Math.max(1024, initialSize));
    this.#buf = this.#fresh(first, first);
  }

  #fresh(min: number, size = OUTPUT_CHUNK): Buffer {
    return this.#pool?.take(min) ?? Buffer.allocUnsafeSlow(Math.max(min, size));
  }

  /** Room for n more bytes in the current chunk (a new chunk when it has not). */
  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    if (this.#len > 0) {
      this.#chunks.push(this.#buf);
      this.#used.push(this.#len);
      this.#base += this.#len;
    } else {
      this.#pool?.give(this.#buf);
    }
    this.#buf = this.#fresh(n);
    this.#len = 0;
  }

  write(s: string): void {
    // UTF-16 code units → at most 3 UTF-8 bytes each (a long run of lines:
    // exactly, so that it gets a chunk of its own size, not three times it).
    const n = s.length * 3;
    this.#reserve(n <= OUTPUT_CHUNK ? n : Buffer.byteLength(s, "utf8"));
    this.#len += this.#buf.write(s, this.#len, "utf8");
  }

  /** Copies [start, end) of the scraped text `src`. */
  copy(src: string, start: number, end: number): void {
    this.write(src.slice(start, end));
    if (end === src.length && src.charCodeAt(end - 1) !== 10) this.write("\n");
  }

  /**
   * HELP and TYPE of a family (`stable`: see floatLabelsStable); the name as
   * written, or undefined when the family cannot be written at all.
   */
  header(f: Omit<Family, "samples">, stable: () => boolean): string | undefined {
    const escaping = this.#escaping;
    const name = escapeName(f.name, escaping, false);
    // An empty name cannot be written escaped (client_golang has none).
    if (name === "" && escaping !== "allow-utf-8") return undefined;
    if (!isValidMetricName(name)) this.utf8Names = true;
    if (f.help !== undefined) this.write(`# HELP ${metricName(name)} ${escapeHelp(f.help)}\n`);
    if (f.typed) {
      // Prometheus's parser normalizes `le` in a histogram and `quantile` in
      // a summary (1 → "1.0"): a value a rule set otherwise would not be read
      // as it is stored. Such a family is served untyped, so its samples are.
      const type = stable() ? f.type : "untyped";
      this.write(`# TYPE ${metricName(name)} ${type}\n`);
      this.#lastType = type;
    } else if (this.#lastType === "histogram" || this.#lastType === "summary") {
      // Prometheus's parser normalizes `le`/`quantile` values by the last
      // TYPE line, whatever its name: an untyped family after a histogram
      // would be read as one. Say what it is.
      this.write(`# TYPE ${metricName(name)} untyped\n`);
      this.#lastType = "untyped";
    }
    return name;
  }

  /**
   * A family whose first `n` lines are finished already (allow-utf-8 only):
   * line i is its series text, then tails[tail[2i], tail[2i+1]).
   */
  writeLines(
    f: Omit<Family, "samples">,
    lines: readonly SeriesText[],
    tail: readonly number[],
    tails: Uint8Array,
    n: number,
  ): void {
    const stable = () => {
      const le = f.type === "histogram";
      if (!le && f.type !== "summary") return true;
      for (let i = 0; i < n; i++) {
        if (le ? lines[i]!.unstableLe : lines[i]!.unstableQuantile) return false;
      }
      return true;
    };
    if (this.header(f, stable) === undefined) return;
    for (let i = 0; i < n; i++) this.line(lines[i]!, tails, tail[2 * i]!, tail[2 * i + 1]!);
  }

  /** One finished line: its series text, then tails[from, to). */
  line(e: SeriesText, tails: Uint8Array, from: number, to: number): void {
    if (e.utf8) this.utf8Names = true;
    const tl = to - from;
    this.#reserve(e.common + e.restLen + tl);
    const buf = this.#buf;
    let at = this.#len;
    copyBytes(buf, at, e.blk, e.keyAt, e.common);
    at += e.common;
    copyBytes(buf, at, e.blk, e.keyAt + e.keyLen, e.restLen);
    at += e.restLen;
    copyBytes(buf, at, tails, from, tl);
    this.#len = at + tl;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#base + this.#len;
  }

  /** The bytes written in [start, end) (a view when they are in one chunk; valid until the next write). */
  read(start: number, end: number): Uint8Array {
    if (start >= this.#base) return this.#buf.subarray(start - this.#base, end - this.#base);
    const out = Buffer.allocUnsafe(end - start);
    let from = 0;
    for (const [i, c] of [...this.#chunks, this.#buf].entries()) {
      const used = this.#used[i] ?? this.#len;
      const a = Math.max(start, from);
      const b = Math.min(end, from + used);
      if (a < b) c.copy(out, a - start, a - from, b - from);
      from += used;
    }
    return out;
  }

  /** What later writes depend on: the last TYPE written and whether UTF-8 names were. */
  get state(): WriterState {
    return { lastType: this.#lastType, utf8Names: this.utf8Names };
  }

  /** Takes back everything written after `length` was `at` (then `state` was `state`). */
  rewind(at: number, state: WriterState): void {
    while (at < this.#base) {
      this.#pool?.give(this.#buf);
      this.#buf = this.#chunks.pop()!;
      this.#base -= this.#used.pop()!;
    }
    this.#len = at - this.#base;
    this.#lastType = state.lastType;
    this.utf8Names = state.utf8Names;
  }

  writeFamily(f: Family): void {
    const escaping = this.#escaping;
    const name = this.header(f, () => floatLabelsStable(f));
    if (name === undefined) return;
    const suffixes = escaping === "allow-utf-8" ? undefined : SUFFIXES[f.type];
    let runSrc: string | undefined;
    let runStart = -1;
    let runEnd = -1;
    for (const smp of f.samples) {
      const utf8 = (smp.flags & UTF8_NAMES) !== 0;
      if (smp.start >= 0 && !(utf8 && escaping !== "allow-utf-8")) {
        if (utf8) this.utf8Names = true;
        if (runSrc === smp.src && runEnd === smp.start) {
          runEnd = smp.end;
          continue;
        }
        if (runSrc !== undefined) this.copy(runSrc, runStart, runEnd);
        runSrc = smp.src;
        runStart = smp.start;
        runEnd = smp.end;
        continue;
      }
      if (runSrc !== undefined) {
        this.copy(runSrc, runStart, runEnd);
        runSrc = undefined;
      }
      let line: string;
      if (escaping === "allow-utf-8") {
        if (!this.utf8Names && hasUtf8Names(smp)) this.utf8Names = true;
        line = seriesText(smp);
      } else {
        // As expfmt: a histogram's or summary's series are the escaped family
        // name plus their suffix.
        const suffix = suffixes?.find(
          (x) =>
            smp.name.length === f.name.length + x.length &&
            smp.name.startsWith(f.name) &&
            smp.name.endsWith(x),
        );
        const n = suffix !== undefined ? name + suffix : escapeName(smp.name, escaping, false);
        line = seriesTextAs(n, smp.labels, escaping);
      }
      line += " ";
      line += smp.vStart >= 0 ? smp.src!.slice(smp.vStart, smp.vEnd) : formatGoFloat(smp.value);
      if (smp.timestamp !== undefined) line += ` ${smp.timestamp}`;
      line += "\n";
      this.write(line);
    }
    if (runSrc !== undefined) this.copy(runSrc, runStart, runEnd);
  }

  /** The bytes written, in order (views on the chunks). */
  finish(): Buffer[] {
    const out = this.#chunks.map((c, i) => c.subarray(0, this.#used[i]));
    if (this.#len > 0 || out.length === 0) out.push(this.#buf.subarray(0, this.#len));
    return out;
  }
}

/** The whole exposition as one string. */
export function serialize(families: readonly Family[]): string {
  const w = new ExpositionWriter();
  for (const f of families) w.writeFamily(f);
  return Buffer.concat(w.finish()).toString("utf8");
}

/**
 * An exposition this package wrote (allow-utf-8) with its names escaped by
 * `scheme` instead, for a scraper that did not ask for UTF-8 names — what
 * client_golang serves such a scraper.
 */
export function escapeExposition(body: Buffer, scheme: Escaping): Buffer {
  const w = new ExpositionWriter(scheme, body.length);
  for (const f of parse(body)) w.writeFamily(f);
  return Buffer.concat(w.finish());
}
