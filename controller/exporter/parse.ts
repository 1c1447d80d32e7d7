// Parser for the Prometheus text exposition format 0.0.4 (what Coder's promhttp
// serves) and OpenMetrics 1.0 text, following the grammar of Prometheus's
// model/textparse (promlex.l / promparse.go) so that what Prometheus would
// accept is accepted here, with the same oddities:
//   - spaces and tabs may appear between any two tokens, also at line start;
//   - labels may be separated by whitespace instead of a comma, and a trailing
//     comma is allowed: `m{a="1" b="2",} 1`;
//   - in label values only \\, \" and \n are escapes; any other `\x` stays as
//     the two characters; in HELP only \\ and \n;
//   - HELP text is everything after the single separator following the name;
//   - values follow Go's strconv.ParseFloat without hex/underscore forms
//     (Inf, +inf, infinity, NaN…), out-of-range values are errors;
//   - timestamps are optional integer milliseconds.
// Stricter than Prometheus, on purpose (we re-serve the payload): a NUL byte
// outside label values/help/comments, invalid UTF-8, a duplicate label name or
// a timestamp beyond 2^53 are errors rather than silently truncated input.
//
// Samples are grouped into families as they follow their HELP/TYPE lines: a
// histogram `foo` takes foo_bucket/foo_sum/foo_count, a summary foo/foo_sum/
// foo_count; any other sample starts a new untyped family of its own name.
// OpenMetrics input is converted to the 0.0.4 model (counter `foo` becomes
// family `foo_total`, `_created` samples, units and exemplars are dropped,
// timestamps go from seconds to milliseconds).
import { type Family, type MetricType, ParseError, Sample } from "./model.ts";

export type ExpositionFormat = "prometheus" | "openmetrics";

export interface ParseOptions {
  format?: ExpositionFormat;
}

/** The format a Content-Type header announces; 0.0.4 text unless OpenMetrics. */
export function formatFromContentType(contentType: string | undefined): ExpositionFormat {
  if (contentType?.toLowerCase().startsWith("application/openmetrics-text")) return "openmetrics";
  return "prometheus";
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses a whole exposition. Throws only ParseError. */
export function parse(input: string | Uint8Array, options: ParseOptions = {}): Family[] {
  const out: Family[] = [];
  parseEach(input, options, (f) => out.push(f));
  return out;
}

/** Decodes a payload as strict UTF-8; ParseError (with the line) otherwise. */
export function decodeExposition(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ParseError(lineOfInvalidUtf8(bytes), "invalid UTF-8");
  }
}

/** Carries an exception thrown by the caller's callback through the parser untouched. */
class CallbackError {
  readonly err: unknown;
  constructor(err: unknown) {
    this.err = err;
  }
}

/** A Parser over the decoded input that hands each family (OpenMetrics converted) to onFamily. */
function parserFor(
  input: string | Uint8Array,
  options: ParseOptions,
  onFamily: (f: Family) => void,
): Parser {
  const text = typeof input === "string" ? input : decodeExposition(input);
  const emit = (f: Family, omType: OMType | undefined) => {
    try {
      if (omType === undefined) onFamily(f);
      else for (const g of fromOpenMetrics(f, omType)) onFamily(g);
    } catch (err) {
      throw new CallbackError(err);
    }
  };
  return new Parser(text, options.format === "openmetrics", emit);
}

/**
 * Parses an exposition, handing each family to `onFamily` as soon as it is
 * complete (so a caller can transform and drop it before the next one is
 * built). Throws ParseError for malformed input — possibly after some
 * families were already handed over; the caller must then discard them.
 */
export function parseEach(
  input: string | Uint8Array,
  options: ParseOptions,
  onFamily: (f: Family) => void,
): void {
  const p = parserFor(input, options, onFamily);
  try {
    p.run();
  } catch (err) {
    throw unwrap(err);
  }
}

/**
 * parseEach in slices of `sliceLines` lines, giving the event loop a turn in
 * between (health checks stay answered while a large payload is processed).
 */
export async function parseEachAsync(
  input: string | Uint8Array,
  options: ParseOptions,
  onFamily: (f: Family) => void,
  sliceLines = 20_000,
): Promise<void> {
  const p = parserFor(input, options, onFamily);
  for (;;) {
    try {
      if (p.step(sliceLines)) return;
    } catch (err) {
      throw unwrap(err);
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

function unwrap(err: unknown): unknown {
  if (err instanceof CallbackError) return err.err;
  if (err instanceof ParseError) return err;
  // Defensive: anything else (e.g. a RangeError on absurd input) is still a
  // malformed payload to the caller, never a crash.
  return new ParseError(0, `internal parser error: ${(err as Error).message}`);
}

// Character codes.
const TAB = 9;
const NL = 10;
const SP = 32;
const QUOTE = 34;
const HASH = 35;
const COMMA = 44;
const EQ = 61;
const BACKSLASH = 92;
const LBRACE = 123;
const RBRACE = 125;

function isNameStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}
function isLabelStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
function isLabelChar(c: number): boolean {
  return isLabelStart(c) || (c >= 48 && c <= 57);
}

/** OpenMetrics types; the 0.0.4 ones are a subset. */
type OMType = MetricType | "gaugehistogram" | "stateset" | "info" | "unknown";

const PROM_TYPES: Record<string, MetricType> = {
  counter: "counter",
  gauge: "gauge",
  histogram: "histogram",
  summary: "summary",
  untyped: "untyped",
};
const OM_TYPES: Record<string, OMType> = {
  counter: "counter",
  gauge: "gauge",
  histogram: "histogram",
  summary: "summary",
  gaugehistogram: "gaugehistogram",
  stateset: "stateset",
  info: "info",
  unknown: "unknown",
};

function omSuffixes(t: OMType): readonly string[] {
  switch (t) {
    case "counter":
      return ["_total", "_created"];
    case "histogram":
      return ["_bucket", "_count", "_sum", "_created"];
    case "gaugehistogram":
      return ["_bucket", "_gcount", "_gsum"];
    case "summary":
      return ["", "_count", "_sum", "_created"];
    case "info":
      return ["_info"];
    default:
      return [""];
  }
}
function promSuffixes(t: MetricType): readonly string[] {
  if (t === "histogram") return ["_bucket", "_sum", "_count"];
  if (t === "summary") return ["", "_sum", "_count"];
  return [""];
}

class Parser {
  readonly src: string;
  readonly om: boolean;
  pos = 0;
  readonly emit: (f: Family, omType: OMType | undefined) => void;
  /** OpenMetrics type of the current family. */
  omType: OMType = "unknown";
  cur: Family | undefined;
  curSuffixes: readonly string[] = [""];
  /** Scratch: [start, end) offsets of the label names of the current sample. */
  readonly nameOffsets: number[] = [];
  /** Offset where the current line starts. */
  lineStart = 0;
  /** Offset of the next backslash at or after the last label value scanned. */
  nextBackslash = -1;
  prevName = "";
  sawEOF = false;

  constructor(src: string, om: boolean, emit: (f: Family, omType: OMType | undefined) => void) {
    this.src = src;
    this.om = om;
    this.emit = emit;
  }

  /** Starts a new family, handing the finished one over. */
  open(name: string): Family {
    this.flush();
    const f: Family = { name, type: "untyped", typed: false, help: undefined, samples: [] };
    this.cur = f;
    this.curSuffixes = [""];
    this.omType = "unknown";
    return f;
  }

  /** Hands the current family over (at a family change and at the end). */
  flush(): void {
    const cur = this.cur;
    if (cur === undefined) return;
    this.cur = undefined;
    this.emit(cur, this.om ? this.omType : undefined);
  }

  /** Throws a ParseError for the current line (counted only now, on failure). */
  fail(reason: string): never {
    const upto = Math.max(this.lineStart, Math.min(this.pos, this.src.length));
    let line = 1;
    for (let i = this.src.indexOf("\n"); i >= 0 && i < upto; i = this.src.indexOf("\n", i + 1))
      line++;
    throw new ParseError(line, reason);
  }

  skipWS(): void {
    const s = this.src;
    let p = this.pos;
    for (;;) {
      const c = s.charCodeAt(p);
      if (c !== SP && c !== TAB) break;
      p++;
    }
    this.pos = p;
  }

  run(): void {
    while (!this.step(Number.POSITIVE_INFINITY));
  }

  /**
   * Parses up to `maxLines` lines; true once the input is done (and the last
   * family handed over). State lives in fields, so parsing can resume.
   */
  step(maxLines: number): boolean {
    const s = this.src;
    const n = s.length;
    let lines = 0;
    while (this.pos < n) {
      if (lines++ >= maxLines) return false;
      if (this.sawEOF) this.fail("unexpected data after # EOF");
      this.lineStart = this.pos;
      this.skipWS();
      if (this.pos >= n) break;
      const c = s.charCodeAt(this.pos);
      if (c === NL) {
        this.pos++;
        continue;
      }
      if (c === HASH) {
        this.comment();
      } else if (isNameStart(c)) {
        this.sample();
      } else if (c === 0) {
        this.fail("unexpected NUL byte");
      } else {
        this.fail(`expected a metric name, comment or blank line, got ${quoteChar(c)}`);
      }
    }
    if (this.om && !this.sawEOF) this.fail("OpenMetrics exposition must end with # EOF");
    this.flush();
    return true;
  }

  /** Index of the end of the current line (the newline or end of input). */
  eol(from: number): number {
    const i = this.src.indexOf("\n", from);
    return i < 0 ? this.src.length : i;
  }

  endLine(at: number): void {
    // `at` is the newline (or end of input); consume it.
    this.pos = at + 1;
  }

  comment(): void {
    const s = this.src;
    const start = this.pos + 1; // after '#'
    const c = s.charCodeAt(start);
    const end = this.eol(start);
    if (c !== SP && c !== TAB) {
      // `#foo`: a plain comment.
      this.endLine(end);
      return;
    }
    this.pos = start;
    this.skipWS();
    const kw = this.keyword(end);
    if (kw === undefined) {
      this.endLine(end);
      return;
    }
    if (kw === "EOF") {
      if (!this.om) {
        this.endLine(end);
        return;
      }
      if (s.slice(this.pos, end).trim() !== "") this.fail("unexpected text after # EOF");
      this.sawEOF = true;
      this.pos = end + 1;
      if (this.pos < s.length) this.fail("unexpected data after # EOF");
      return;
    }
    // HELP / TYPE / UNIT: name then text.
    const nameStart = this.pos;
    if (!isNameStart(s.charCodeAt(nameStart))) this.fail(`expected metric name after ${kw}`);
    let p = nameStart + 1;
    while (isNameChar(s.charCodeAt(p))) p++;
    const name = s.slice(nameStart, p);
    // Prometheus takes everything after the name but its first character; a
    // rest of only blanks is empty text.
    const rest = s.slice(p, end);
    let text = "";
    if (rest.length > 1 && !/^[ \t]*$/.test(rest)) text = rest.slice(1);
    if (kw === "TYPE") this.typeLine(name, text);
    else if (kw === "HELP") this.helpLine(name, text);
    // UNIT (OpenMetrics) has no place in the 0.0.4 model; validated and dropped.
    else this.metaFamily(name, "unit");
    this.endLine(end);
  }

  /** HELP/TYPE/UNIT/EOF followed by blanks, consumed; undefined for a plain comment. */
  keyword(end: number): "HELP" | "TYPE" | "UNIT" | "EOF" | undefined {
    const s = this.src;
    const p = this.pos;
    if (this.om && s.startsWith("EOF", p) && s.slice(p + 3, end).trim() === "") {
      this.pos = p + 3;
      return "EOF";
    }
    for (const kw of ["HELP", "TYPE", "UNIT"] as const) {
      if (kw === "UNIT" && !this.om) continue;
      if (s.startsWith(kw, p)) {
        const c = s.charCodeAt(p + 4);
        if (c === SP || c === TAB) {
          this.pos = p + 4;
          this.skipWS();
          return kw;
        }
      }
    }
    return undefined;
  }

  /** The family a HELP/TYPE/UNIT line for `name` applies to (new unless it continues the current one). */
  metaFamily(name: string, field: "help" | "type" | "unit"): Family {
    const cur = this.cur;
    if (cur !== undefined && cur.name === name && cur.samples.length === 0) {
      const already = field === "help" ? cur.help !== undefined : field === "type" && cur.typed;
      if (!already) return cur;
    }
    return this.open(name);
  }

  typeLine(name: string, text: string): void {
    if (this.om) {
      const t = OM_TYPES[text];
      if (t === undefined) this.fail(`invalid metric type "${text}"`);
      const f = this.metaFamily(name, "type");
      f.typed = true;
      f.type =
        t === "unknown" || t === "gaugehistogram" || t === "stateset" || t === "info"
          ? "untyped"
          : t;
      this.omType = t;
      this.curSuffixes = omSuffixes(t);
      return;
    }
    const t = PROM_TYPES[text];
    if (t === undefined) this.fail(`invalid metric type "${text}"`);
    const f = this.metaFamily(name, "type");
    f.typed = true;
    f.type = t;
    this.curSuffixes = promSuffixes(t);
  }

  helpLine(name: string, text: string): void {
    const f = this.metaFamily(name, "help");
    f.help = text.indexOf("\\") >= 0 ? unescapeHelp(text, this.om) : text;
  }

  familyFor(name: string): Family {
    const cur = this.cur;
    if (cur !== undefined) {
      if (name === this.prevName && cur.samples.length > 0) return cur;
      const base = cur.name;
      if (name.startsWith(base)) {
        const rest = name.length === base.length ? "" : name.slice(base.length);
        for (const suf of this.curSuffixes) if (suf === rest) return cur;
      }
    }
    return this.open(name);
  }

  sample(): void {
    const s = this.src;
    const lineStart = this.lineStart;
    const nameStart = this.pos;
    let p = nameStart + 1;
    while (isNameChar(s.charCodeAt(p))) p++;
    // Reuse the previous sample's name string when it is the same.
    const prev = this.prevName;
    const name =
      p - nameStart === prev.length && s.startsWith(prev, nameStart) ? prev : s.slice(nameStart, p);
    this.pos = p;
    this.skipWS();
    let lStart = -1;
    if (s.charCodeAt(this.pos) === LBRACE) {
      this.pos++;
      lStart = this.pos;
      this.labelSet();
      this.skipWS();
    }
    // Value: everything up to a blank, newline or '{'.
    const vStart = this.pos;
    p = vStart;
    let int = 0;
    let simpleInt = true;
    for (;;) {
      const c = s.charCodeAt(p);
      if (c === SP || c === TAB || c === NL || c === LBRACE || Number.isNaN(c)) break;
      if (c === 0) this.fail("unexpected NUL byte");
      if (c >= 48 && c <= 57) int = int * 10 + (c - 48);
      else simpleInt = false;
      p++;
    }
    if (p === vStart) this.fail(`expected value after metric "${name}"`);
    let value: number | undefined;
    if (simpleInt && p - vStart <= 15) {
      value = int;
    } else {
      value = parseGoFloat(s.slice(vStart, p));
      if (value === undefined)
        this.fail(`invalid value "${s.slice(vStart, p)}" for metric "${name}"`);
    }
    const vEnd = p;
    this.pos = p;
    this.skipWS();
    let timestamp: number | undefined;
    let c = s.charCodeAt(this.pos);
    if (c !== NL && !Number.isNaN(c)) {
      timestamp = this.om ? this.omTimestamp() : this.promTimestamp();
      this.skipWS();
      c = s.charCodeAt(this.pos);
      if (this.om && c === HASH) {
        // Exemplar: dropped (0.0.4 cannot carry it).
        this.pos = this.eol(this.pos);
        c = s.charCodeAt(this.pos);
      }
      if (c !== NL && !Number.isNaN(c)) this.fail("expected end of line after timestamp");
    }
    this.pos++;
    const fam = this.familyFor(name);
    this.prevName = name;
    // OpenMetrics lines are never copied verbatim (timestamps/exemplars differ).
    const end = this.om ? -1 : Math.min(this.pos, s.length);
    fam.samples.push(
      Sample.fromSource(
        s,
        name,
        lStart,
        value,
        vStart,
        vEnd,
        timestamp,
        this.om ? -1 : lineStart,
        end,
      ),
    );
  }

  promTimestamp(): number {
    const s = this.src;
    const start = this.pos;
    let p = start;
    while (true) {
      const c = s.charCodeAt(p);
      if (c < 48 || c > 57 || Number.isNaN(c)) break;
      p++;
    }
    if (p === start)
      this.fail(`expected timestamp or end of line, got ${quoteChar(s.charCodeAt(p))}`);
    const t = Number(s.slice(start, p));
    if (!Number.isSafeInteger(t)) this.fail("timestamp out of range");
    this.pos = p;
    return t;
  }

  omTimestamp(): number | undefined {
    const s = this.src;
    const start = this.pos;
    if (s.charCodeAt(start) === HASH) return undefined; // exemplar without timestamp
    let p = start;
    for (;;) {
      const c = s.charCodeAt(p);
      if (c === SP || c === TAB || c === NL || Number.isNaN(c)) break;
      p++;
    }
    const v = parseGoFloat(s.slice(start, p));
    if (v === undefined || !Number.isFinite(v))
      this.fail(`invalid timestamp "${s.slice(start, p)}"`);
    this.pos = p;
    return Math.round(v * 1000);
  }

  /**
   * Validates `name="value", …}` after the opening brace without building
   * strings (labels are materialised later, only if a stage needs them).
   */
  labelSet(): void {
    const s = this.src;
    const names = this.nameOffsets;
    names.length = 0;
    for (;;) {
      this.skipWS();
      let c = s.charCodeAt(this.pos);
      if (c === RBRACE) {
        this.pos++;
        return;
      }
      if (!isLabelStart(c)) this.fail(`expected label name, got ${quoteChar(c)}`);
      const ns = this.pos;
      let p = ns + 1;
      while (isLabelChar(s.charCodeAt(p))) p++;
      const len = p - ns;
      if (len === 8 && s.startsWith("__name__", ns)) {
        this.fail('label "__name__" is not allowed in a label set');
      }
      for (let i = 0; i < names.length; i += 2) {
        const os = names[i]!;
        if (names[i + 1]! - os === len && sameRange(s, os, ns, len)) {
          this.fail(`duplicate label name "${s.slice(ns, p)}"`);
        }
      }
      names.push(ns, p);
      this.pos = p;
      this.skipWS();
      if (s.charCodeAt(this.pos) !== EQ)
        this.fail(`expected "=" after label name "${s.slice(ns, p)}"`);
      this.pos++;
      this.skipWS();
      if (s.charCodeAt(this.pos) !== QUOTE) {
        this.fail(`expected quoted value for label "${s.slice(ns, p)}"`);
      }
      this.skipLabelValue();
      this.skipWS();
      c = s.charCodeAt(this.pos);
      if (c === COMMA) this.pos++;
    }
  }

  /** Skips a quoted label value starting at the opening quote. */
  skipLabelValue(): void {
    const s = this.src;
    let p = this.pos + 1;
    // Fast path: jump to the next quote unless a backslash comes first.
    if (this.nextBackslash < p) {
      const b = s.indexOf("\\", p);
      this.nextBackslash = b < 0 ? s.length : b;
    }
    const q = s.indexOf('"', p);
    if (q >= 0 && q < this.nextBackslash) {
      this.pos = q + 1;
      return;
    }
    for (;;) {
      const c = s.charCodeAt(p);
      if (c === QUOTE) break;
      if (Number.isNaN(c)) this.fail("unterminated label value");
      if (c === BACKSLASH) {
        const d = s.charCodeAt(p + 1);
        if (d === NL || Number.isNaN(d)) this.fail("invalid escape at end of line in label value");
        p += 2;
        continue;
      }
      p++;
    }
    this.pos = p + 1;
  }
}

function sameRange(s: string, a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (s.charCodeAt(a + i) !== s.charCodeAt(b + i)) return false;
  return true;
}

/** HELP unescaping: \\ and \n (OpenMetrics also \"). */
function unescapeHelp(raw: string, om: boolean): string {
  let out = "";
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) !== BACKSLASH) continue;
    const d = raw.charCodeAt(i + 1);
    let rep: string | undefined;
    if (d === BACKSLASH) rep = "\\";
    else if (d === 110) rep = "\n";
    else if (om && d === QUOTE) rep = '"';
    if (rep !== undefined) {
      out += raw.slice(last, i) + rep;
      last = i + 2;
      i++;
    }
  }
  return out + raw.slice(last);
}

/**
 * Go's strconv.ParseFloat(s, 64) as Prometheus calls it: decimal forms,
 * case-insensitive inf/infinity (signed) and nan (unsigned); no hex, no
 * underscores; overflow is an error. Returns undefined when invalid.
 */
export function parseGoFloat(s: string): number | undefined {
  let simple = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45)) {
      simple = false;
      break;
    }
  }
  if (simple) {
    if (s.length === 0) return undefined;
    const v = Number(s);
    if (Number.isNaN(v) || !Number.isFinite(v)) return undefined;
    return v;
  }
  const l = s.toLowerCase();
  let sign = 1;
  let body = l;
  if (l.charCodeAt(0) === 43 || l.charCodeAt(0) === 45) {
    sign = l.charCodeAt(0) === 45 ? -1 : 1;
    body = l.slice(1);
  } else if (l === "nan") {
    return Number.NaN;
  }
  if (body === "inf" || body === "infinity") return sign * Number.POSITIVE_INFINITY;
  return undefined;
}

function quoteChar(c: number): string {
  if (Number.isNaN(c)) return "end of input";
  if (c === NL) return "end of line";
  return JSON.stringify(String.fromCharCode(c));
}

/** 1-based line of the first invalid UTF-8 sequence. */
function lineOfInvalidUtf8(b: Uint8Array): number {
  let line = 1;
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c === NL) line++;
    let need = 0;
    if (c < 0x80) need = 0;
    else if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) need = 2;
    else if (c >= 0xf0 && c <= 0xf4) need = 3;
    else return line;
    const chunk = b.subarray(i, i + need + 1);
    if (chunk.length !== need + 1) return line;
    try {
      utf8.decode(chunk);
    } catch {
      return line;
    }
    i += need + 1;
  }
  return line;
}

/** Converts one OpenMetrics family to the 0.0.4 model (gauge histograms become several gauges). */
function fromOpenMetrics(f: Family, t: OMType): Family[] {
  const samples = f.samples.filter((s) => !s.name.endsWith("_created") || s.name === f.name);
  switch (t) {
    case "counter":
      return [{ ...f, name: samples.length > 0 ? `${f.name}_total` : f.name, samples }];
    case "info":
      return [{ ...f, name: `${f.name}_info`, type: "gauge", samples }];
    case "stateset":
      return [{ ...f, type: "gauge", samples }];
    case "gaugehistogram": {
      // 0.0.4 has no gauge histogram: one gauge family per sample name.
      const byName = new Map<string, Sample[]>();
      for (const s of samples) {
        const list = byName.get(s.name);
        if (list === undefined) byName.set(s.name, [s]);
        else list.push(s);
      }
      return [...byName].map(([name, list]) => ({
        name,
        type: "gauge",
        typed: true,
        help: f.help,
        samples: list,
      }));
    }
    default:
      return [{ ...f, samples }];
  }
}
