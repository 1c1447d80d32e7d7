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
import type { Shape, ShapeTable } from "../model/shape.ts";
import type { FamilyContext, SeriesCache, SeriesEntry } from "../model/series-cache.ts";
import { detach } from "../model/detach.ts";
import { HASH_SEED, hashRange } from "../model/label-scan.ts";
import { formatOpenMetricsFloat, isCanonicalFloat, parseGoFloatFull } from "../model/float.ts";
import {
  EMPTY_LABEL_NAME,
  EMPTY_LABEL_VALUE,
  type Family,
  type MetricType,
  ParseError,
  RAW_HASH,
  Sample,
  UTF8_NAMES,
  unescapeLabelValue,
} from "../model/model.ts";

export type ExpositionFormat = "prometheus" | "openmetrics";

export interface ParseOptions {
  format?: ExpositionFormat;
  /**
   * Record each sample's label layout (interned here) and value ranges while
   * parsing, so later stages need not read the label text again.
   */
  shapes?: ShapeTable;
  /**
   * Lines whose series text this cache knows (in the same family) are not
   * parsed but handed to the visitor's hit() as they are (ExpositionStream,
   * text format only); samples carry their key range for it.
   */
  cache?: SeriesCache;
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

/** Thrown inside a stream segment when a line continues past its end (see Parser.segment). */
const NEED_MORE = Symbol("need more input");

/** Carries an exception thrown by the caller's callback through the parser untouched. */
class CallbackError {
  readonly err: unknown;
  constructor(err: unknown) {
    this.err = err;
  }
}

/**
 * Receives a parse as it goes: a family's head (its `samples` stay empty),
 * then its samples one by one, then its end. Samples reach the visitor as
 * soon as their line is read, so a consumer that aggregates them lets them
 * die young instead of holding a whole family.
 */
export interface FamilyVisitor {
  begin(head: Family): void;
  /**
   * One sample. Returns true when the visitor keeps a reference to it; a
   * sample it lets go (false) may be reused for a later line.
   */
  sample(s: Sample): boolean;
  /**
   * A line whose series the cache knows: bytes [tailStart, tailEnd) of `b`
   * are the rest of the line (a blank, a valid value, the newline). Returns
   * false to have the line parsed as usual instead.
   */
  hit?(e: SeriesEntry, b: Uint8Array, tailStart: number, tailEnd: number): boolean;
  /** The family is complete. */
  end(): void;
}

/** A visitor that collects whole families. */
function collector(onFamily: (f: Family) => void): FamilyVisitor {
  let cur: Family | undefined;
  return {
    begin(head) {
      cur = head;
    },
    sample(s) {
      cur!.samples.push(s);
      return true;
    },
    end() {
      const f = cur!;
      cur = undefined;
      onFamily(f);
    },
  };
}

/** A Parser over the decoded input that hands everything (OpenMetrics converted) to the visitor. */
function parserFor(input: string | Uint8Array, options: ParseOptions, v: FamilyVisitor): Parser {
  const text = typeof input === "string" ? input : decodeExposition(input);
  return new Parser(text, options.format === "openmetrics", v, options.shapes, options.cache);
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
  parseVisit(input, options, collector(onFamily));
}

/** Parses an exposition into a visitor. Throws ParseError for malformed input (see parseEach). */
export function parseVisit(
  input: string | Uint8Array,
  options: ParseOptions,
  visitor: FamilyVisitor,
): void {
  const p = parserFor(input, options, visitor);
  try {
    p.run();
  } catch (err) {
    throw unwrap(err);
  }
}

/**
 * Parses an exposition that arrives in pieces (UTF-8 bytes or text, split
 * anywhere): each complete line is parsed as soon as it is there, so neither
 * the payload nor its text is ever held whole. Throws only ParseError (and
 * whatever the visitor throws), like parseVisit.
 */
export class ExpositionStream {
  readonly #parser: Parser;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  /** The incomplete last line so far. */
  #carry = "";
  /** Whether the carried line waits for the quote that ends a label value. */
  #waitQuote = false;

  /** Known series skip the parser (see ParseOptions.cache): only with a visitor that takes hits. */
  readonly #cache: SeriesCache | undefined;

  constructor(options: ParseOptions, visitor: FamilyVisitor) {
    const om = options.format === "openmetrics";
    this.#parser = new Parser("", om, visitor, options.shapes, options.cache);
    this.#cache = om || visitor.hit === undefined ? undefined : options.cache;
  }

  /** The next bytes of the payload (strict UTF-8). */
  writeBytes(chunk: Uint8Array): void {
    if (this.#cache === undefined) {
      this.#decode(chunk, 0, chunk.length);
      return;
    }
    // Whole lines go through the cache; a line cut by the chunk's end is
    // parsed (as text carried over to the next chunk).
    const cut = chunk.lastIndexOf(NL);
    if (cut >= 0) this.#lines(chunk, 0, cut + 1);
    if (cut + 1 < chunk.length) this.#decode(chunk, cut + 1, chunk.length);
  }

  /**
   * Whole lines [from, to) of `b`: a line `series value` whose series the
   * cache knows goes to the visitor as a hit; runs of other lines are decoded
   * and parsed. A hit is only taken with no text carried over: a carried line
   * (one cut by a chunk's end, or a label value holding a raw newline) would
   * otherwise be read as lines of its own.
   */
  #lines(b: Uint8Array, from: number, to: number): void {
    const cache = this.#cache!;
    const parser = this.#parser;
    let slow = from;
    let p = from;
    /** Lines in a row the cache did not know. */
    let misses = 0;
    while (p < to) {
      if (misses >= MISSES_BEFORE_SKIP) {
        // A family the cache never answers (aggregated, say): its lines are
        // parsed; look again from the next comment line (the next family).
        const next = indexOfRange.call(b, NL_HASH, p);
        p = next < 0 || next >= to ? to : next + 1;
        misses = 0;
        continue;
      }
      // Most lines are the one that came after the last line last time.
      let e = cache.predicted(b, p, to);
      let nl: number;
      let k: number;
      if (e !== undefined) {
        nl = cache.tailEnd - 1;
        k = p + e.keyLen;
        if (!isSimpleValue(b, k + 1, nl)) e = undefined;
      } else {
        nl = b.indexOf(NL, p);
        k = -1;
        const c = b[p]!;
        if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || c === LBRACE) {
          k = keyEnd(b, p, nl);
          if (k > p) e = cache.find(b, p, k);
          misses = e === undefined ? misses + 1 : 0;
        } else {
          misses = 0;
        }
      }
      if (e !== undefined) {
        if (slow < p) this.#decode(b, slow, p);
        slow = p;
        // (No closure here, as #guard would take: one a line is garbage a line.)
        if (this.#carry === "") {
          let taken: boolean;
          try {
            taken = parser.hit(e, b, k, nl + 1);
          } catch (err) {
            throw unwrap(err);
          }
          if (taken) slow = nl + 1;
          // A line the pipeline will not take from the cache (its family is
          // aggregated, say) counts as one the cache did not know.
          else misses++;
        }
      }
      p = nl + 1;
    }
    if (slow < to) this.#decode(b, slow, to);
  }

  /** Bytes [from, to) of `b` as text for the parser. */
  #decode(b: Uint8Array, from: number, to: number): void {
    const part = from === 0 && to === b.length ? b : b.subarray(from, to);
    let text: string;
    try {
      text = this.#decoder.decode(part, { stream: true });
    } catch {
      throw new ParseError(this.#parser.lineBase + lineOfInvalidUtf8(part), "invalid UTF-8");
    }
    this.write(text);
  }

  /** The next text of the payload. */
  write(text: string): void {
    let from = 0;
    if (this.#carry !== "") {
      // A label value holding a raw newline ran on: it cannot end before a quote.
      if (this.#waitQuote && !text.includes('"')) {
        this.#carry += text;
        return;
      }
      const nl = text.indexOf("\n");
      if (nl < 0) {
        this.#carry += text;
        return;
      }
      // The carried partial line, completed (a short string of its own).
      const head = this.#carry + text.slice(0, nl + 1);
      this.#carry = "";
      const done = this.#segment(head, 0, head.length, false);
      this.#waitQuote = done < head.length;
      if (this.#waitQuote) {
        this.#carry = head.slice(done) + text.slice(nl + 1);
        return;
      }
      from = nl + 1;
    }
    // The rest is parsed where it is, without copying it.
    const cut = text.lastIndexOf("\n");
    if (cut < from) {
      this.#carry = text.slice(from);
      return;
    }
    const done = this.#segment(text, from, cut + 1, false);
    this.#waitQuote = done <= cut;
    this.#carry = text.slice(done);
  }

  /** The payload is complete: parses the last line and hands the last family over. */
  end(): void {
    let rest: string;
    try {
      rest = this.#decoder.decode();
    } catch {
      throw new ParseError(this.#parser.lineBase + 1, "invalid UTF-8 at end of input");
    }
    const last = this.#carry + rest;
    this.#carry = "";
    this.#guard(() => {
      this.#parser.segment(last, 0, last.length, true);
      this.#parser.finish();
    });
  }

  #segment(text: string, from: number, to: number, final: boolean): number {
    let done = to;
    this.#guard(() => {
      done = this.#parser.segment(text, from, to, final);
    });
    return done;
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      throw unwrap(err);
    }
  }
}

/**
 * Where the series text of line [start, nl) ends when the line is exactly
 * `series value` — one blank, then a value every Go ParseFloat takes (a
 * decimal or Go-formatted number, NaN, ±Inf), then the newline — else -1.
 * A line with a timestamp, other blanks or any other value is parsed.
 */
function keyEnd(b: Uint8Array, start: number, nl: number): number {
  let i = nl - 1;
  while (i > start && isValueByte(b[i]!)) i--;
  if (b[i] !== SP || i === nl - 1 || !isSimpleValue(b, i + 1, nl)) return -1;
  return i;
}

function isValueByte(c: number): boolean {
  return (
    (c >= 48 && c <= 57) ||
    c === 46 ||
    c === 43 ||
    c === 45 ||
    c === 101 ||
    c === 69 ||
    c === 73 ||
    c === 110 ||
    c === 102 ||
    c === 78 ||
    c === 97
  );
}

/** [-+]?digits[.digits][e[-+]d[d]] (mantissa ≤ 200 digits: no overflow), NaN, [-+]Inf. */
function isSimpleValue(b: Uint8Array, from: number, to: number): boolean {
  let i = from;
  let c = b[i]!;
  if (c === 78) return to - from === 3 && b[i + 1] === 97 && b[i + 2] === 78; // NaN
  if (c === 43 || c === 45) c = b[++i]!;
  if (c === 73) return to - i === 3 && b[i + 1] === 110 && b[i + 2] === 102; // Inf
  let digits = 0;
  while (i < to && b[i]! >= 48 && b[i]! <= 57) {
    i++;
    digits++;
  }
  if (i < to && b[i] === 46) {
    i++;
    while (i < to && b[i]! >= 48 && b[i]! <= 57) {
      i++;
      digits++;
    }
  }
  if (digits === 0 || digits > 200) return false;
  if (i === to) return true;
  c = b[i]!;
  if (c !== 101 && c !== 69) return false;
  c = b[++i]!;
  if (c === 43 || c === 45) i++;
  const exp = i;
  while (i < to && b[i]! >= 48 && b[i]! <= 57) i++;
  return i === to && i > exp && i - exp <= 2;
}

/** Misses in a row after which the byte lane skips to the next family (see #lines). */
const MISSES_BEFORE_SKIP = 16;
const NL_HASH = Buffer.from("\n#");
const indexOfRange = Buffer.prototype.indexOf as (
  this: Uint8Array,
  value: Uint8Array,
  byteOffset: number,
) => number;

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
  /** The text being parsed: the whole input, or the current segment of a stream. */
  src: string;
  /** Lines in the segments before this one (for error line numbers). */
  lineBase = 0;
  /** Where the current segment starts and ends in `src`. */
  segStart = 0;
  limit: number;
  /** Whether the input ends at `limit` (else a value cut there waits for more, see NEED_MORE). */
  final = true;
  readonly om: boolean;
  pos = 0;
  readonly visitor: FamilyVisitor;
  /** Samples of the current family so far (OpenMetrics: buffered in `cur.samples`). */
  curCount = 0;

  /** OpenMetrics type of the current family. */
  omType: OMType = "unknown";
  cur: Family | undefined;
  curSuffixes: readonly string[] = [""];
  /** Scratch: [start, end) offsets of the label names of the current sample. */
  nameOffsets: number[] = [];
  /** The same for the previous sample with labels. */
  prevNameOffsets: number[] = [];
  prevNameCount = 0;
  /** Scratch: [start, end) of each label value of the current sample (~start if escaped). */
  readonly valueOffsets: number[] = [];
  valueCount = 0;
  /** Whether the current sample's label names are the previous one's. */
  sameNames = false;
  readonly shapes: ShapeTable | undefined;
  prevShape: Shape | undefined;
  /** A sample the visitor let go of, to fill in for the next line. */
  spare: Sample | undefined;
  /** Value ranges of recent samples; a new chunk is started when one fills. */
  chunk = new Int32Array(0);
  chunkLen = 0;
  /** Offset where the current line starts. */
  lineStart = 0;
  /** Offset of the next backslash at or after the last label value scanned. */
  nextBackslash = -1;
  prevName = "";
  sawEOF = false;
  /** A NUL where a line starts ended the input (text format): the rest is ignored. */
  ended = false;
  /**
   * The type of the last TYPE line (text format), whatever its name: like
   * Prometheus's parser, it decides whether `le`/`quantile` values are
   * normalized (see normalizeFloatLabel).
   */
  lastType: MetricType | undefined = undefined;
  /** Normalized `le`/`quantile` values by raw text (few distinct ones). */
  readonly normalized = new Map<string, string>();
  /** The metric name found inside the braces by labelSet. */
  inlineName: string | undefined = undefined;
  /** SampleFlags of the label set labelSet just read. */
  labelFlags = 0;
  /** Whether a sample so far had a timestamp (see RAW_HASH). */
  timestamped = false;
  /** Families get a context for it, samples a key range (see ParseOptions.cache). */
  readonly cache: SeriesCache | undefined;

  constructor(
    src: string,
    om: boolean,
    visitor: FamilyVisitor,
    shapes: ShapeTable | undefined,
    cache?: SeriesCache,
  ) {
    this.src = src;
    this.limit = src.length;
    this.om = om;
    this.visitor = visitor;
    this.shapes = shapes;
    this.cache = om ? undefined : cache;
  }

  /**
   * The family's context for the series cache: what decides how its lines
   * are read (name, type, HELP, and for an untyped family the last TYPE,
   * which decides `le`/`quantile` normalization). Set at its first sample.
   */
  contextOf(f: Family): FamilyContext {
    let c = f.context;
    if (c === undefined) {
      const last = f.typed ? f.type : (this.lastType ?? "-");
      const help = f.help === undefined ? "\u0001" : `\u0000${f.help}`;
      c = this.cache!.context(`${f.typed ? "T" : "U"}${f.type}/${last}/${f.name}${help}`);
      f.context = c;
    }
    return c;
  }

  /** Whether a sample named `name` belongs to the current family (familyFor would not open one). */
  belongs(cur: Family, name: string): boolean {
    if (name === this.prevName && this.curCount > 0) return true;
    const base = cur.name;
    if (!name.startsWith(base)) return false;
    const rest = name.length === base.length ? "" : name.slice(base.length);
    for (const suf of this.curSuffixes) if (suf === rest) return true;
    return false;
  }

  /**
   * A whole line the cache knows (see ExpositionStream): taken as a sample
   * of the current family when its entry was made in this family's context;
   * false to have it parsed instead.
   */
  hit(e: SeriesEntry, b: Uint8Array, tailStart: number, tailEnd: number): boolean {
    if (this.timestamped || this.ended) return false;
    const cur = this.cur;
    if (cur === undefined || e.ctx !== this.contextOf(cur) || !this.belongs(cur, e.name)) {
      return false;
    }
    try {
      if (this.curCount === 0) this.visitor.begin(cur);
      if (!this.visitor.hit!(e, b, tailStart, tailEnd)) return false;
    } catch (err) {
      throw new CallbackError(err);
    }
    this.curCount++;
    this.prevName = e.name;
    this.lineBase++;
    return true;
  }

  /** Starts a new family, handing the finished one over. */
  open(name: string): Family {
    this.flush();
    const f: Family = { name, type: "untyped", typed: false, help: undefined, samples: [] };
    this.cur = f;
    this.curCount = 0;
    this.curSuffixes = [""];
    this.omType = "unknown";
    return f;
  }

  /** Ends the current family (at a family change and at the end). */
  flush(): void {
    const cur = this.cur;
    if (cur === undefined) return;
    this.cur = undefined;
    const v = this.visitor;
    try {
      if (this.om) {
        for (const g of fromOpenMetrics(cur, this.omType)) {
          const samples = g.samples;
          v.begin({ ...g, samples: [] });
          for (const smp of samples) v.sample(smp); // buffered whole: never reused
          v.end();
        }
      } else {
        if (this.curCount === 0) v.begin(cur);
        v.end();
      }
    } catch (err) {
      throw new CallbackError(err);
    }
  }

  /** Throws a ParseError for the current line (counted only now, on failure). */
  fail(reason: string): never {
    const upto = Math.max(this.lineStart, Math.min(this.pos, this.limit));
    let line = this.lineBase + 1;
    const s = this.src;
    for (let i = s.indexOf("\n", this.segStart); i >= 0 && i < upto; i = s.indexOf("\n", i + 1))
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
    this.lines();
    this.finish();
  }

  /**
   * Parses [from, to) of `text`, whole lines of a stream (`to` just after a
   * newline, or the end of input when `final`). Returns where parsing
   * stopped: `to`, or the start of a line whose label value runs on past `to`
   * (Prometheus allows a raw newline in one); that line needs more input.
   */
  segment(text: string, from: number, to: number, final: boolean): number {
    this.src = text;
    this.pos = from;
    this.segStart = from;
    this.limit = to;
    this.final = final;
    // Offsets into the previous segment mean nothing in this one.
    this.prevNameCount = 0;
    this.sameNames = false;
    // (An empty label set would otherwise count as "the same names" and take
    // the last segment's shape.)
    this.prevShape = undefined;
    this.nextBackslash = -1;
    let done = to;
    try {
      this.lines();
    } catch (err) {
      if (err !== NEED_MORE) throw err;
      done = this.lineStart;
    }
    // Newlines, not parsed lines: a label value may hold a raw newline.
    for (let i = text.indexOf("\n", from); i >= 0 && i < done; i = text.indexOf("\n", i + 1))
      this.lineBase++;
    this.segStart = done; // lines before it are counted in lineBase now
    return done;
  }

  /** After the last line: hands the last family over. */
  finish(): void {
    if (this.om && !this.sawEOF) this.fail("OpenMetrics exposition must end with # EOF");
    this.flush();
  }

  /** Parses the lines of `src` up to `limit`. */
  lines(): void {
    const s = this.src;
    const n = this.limit;
    if (this.ended) {
      this.pos = n;
      return;
    }
    while (this.pos < n) {
      this.lineStart = this.pos;
      if (this.sawEOF) this.fail("unexpected data after # EOF");
      this.skipWS();
      if (this.pos >= n) break;
      const c = s.charCodeAt(this.pos);
      if (c === NL) {
        this.pos++;
        continue;
      }
      if (c === HASH) {
        this.comment();
      } else if (isNameStart(c) || c === LBRACE) {
        this.sample();
      } else if (c === 0) {
        if (this.om) this.fail("unexpected NUL byte");
        // Prometheus's lexer reads a NUL where a line starts as the end of
        // the input: whatever follows is ignored, not refused.
        this.ended = true;
        this.pos = n;
        return;
      } else {
        this.fail(`expected a metric name, comment or blank line, got ${quoteChar(c)}`);
      }
    }
  }

  /** Index of the end of the current line (the newline or end of input). */
  eol(from: number): number {
    const i = this.src.indexOf("\n", from);
    return i < 0 || i > this.limit ? this.limit : i;
  }

  endLine(at: number): void {
    // `at` is the newline (or end of input); consume it.
    this.pos = at + 1;
  }

  comment(): void {
    const s = this.src;
    const start = this.pos + 1; // after '#'
    const c = s.charCodeAt(start);
    const lineEnd = this.eol(start);
    if (c !== SP && c !== TAB) {
      // `#foo`: a plain comment. Prometheus's lexer reads a NUL in it as the
      // end of the input.
      if (!this.om && hasNul(s, start, lineEnd)) {
        this.ended = true;
        this.pos = this.limit;
        return;
      }
      this.endLine(lineEnd);
      return;
    }
    this.pos = start;
    this.skipWS();
    if (!this.om && s.charCodeAt(this.pos) === 0) {
      // `# ` then a NUL: the end of the input too (elsewhere in a comment it is skipped).
      this.ended = true;
      this.pos = this.limit;
      return;
    }
    const kw = this.keyword(lineEnd);
    if (kw === undefined) {
      this.endLine(lineEnd);
      return;
    }
    if (kw === "EOF") {
      if (!this.om) {
        this.endLine(lineEnd);
        return;
      }
      if (s.slice(this.pos, lineEnd).trim() !== "") this.fail("unexpected text after # EOF");
      this.sawEOF = true;
      this.pos = lineEnd + 1; // anything after it fails on its own line (see lines())
      return;
    }
    // HELP / TYPE / UNIT: name (plain, or quoted for UTF-8 names) then text.
    const nameStart = this.pos;
    let p: number;
    let name: string;
    let end = lineEnd;
    if (s.charCodeAt(nameStart) === QUOTE) {
      // A quoted name may hold a raw newline: the line ends after it.
      p = this.quotedEnd(nameStart, this.limit);
      if (p < 0) this.fail(`expected metric name after ${kw}`);
      name = unquote(s, nameStart, p);
      end = this.eol(p);
    } else {
      if (!isNameStart(s.charCodeAt(nameStart))) this.fail(`expected metric name after ${kw}`);
      p = nameStart + 1;
      while (isNameChar(s.charCodeAt(p))) p++;
      name = s.slice(nameStart, p);
    }
    // Prometheus's lexer cannot start the text with a NUL.
    if (s.charCodeAt(p) === 0) this.fail(`unexpected NUL byte after ${kw} name`);
    // Prometheus takes everything after the name but its first character,
    // unless all of it is blank: its lexer then reads the blanks as a
    // separator and the text as empty.
    const rest = s.slice(p, end);
    // (Its first *byte*: a multi-byte character there leaves invalid UTF-8,
    // which Prometheus refuses in HELP; no TYPE starts like that either.)
    if (!this.om && rest.charCodeAt(0) >= 0x80) this.fail(`${kw} text is not valid UTF-8`);
    const text = /^[ \t]*$/.test(rest) ? "" : rest.slice(1);
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
    if (cur !== undefined && cur.name === name && this.curCount === 0) {
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
      this.lastType = t === "histogram" || t === "summary" ? t : "untyped";
      this.curSuffixes = omSuffixes(t);
      return;
    }
    const t = PROM_TYPES[text];
    if (t === undefined) this.fail(`invalid metric type "${text}"`);
    this.lastType = t;
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
      if (name === this.prevName && this.curCount > 0) return cur;
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
    // The metric name: before the braces, or quoted inside them (UTF-8 names).
    let name: string | undefined;
    let flags = 0;
    /** End of the series text (name and labels), Prometheus's scrape-cache key. */
    let seriesEnd = -1;
    if (s.charCodeAt(this.pos) !== LBRACE) {
      const nameStart = this.pos;
      let p = nameStart + 1;
      while (isNameChar(s.charCodeAt(p))) p++;
      // Prometheus's text parser takes the name from where the line starts,
      // so blanks before it are part of it (`  m 1` is the series "  m").
      const from = this.om ? nameStart : lineStart;
      if (from !== nameStart) flags = UTF8_NAMES;
      // Reuse the previous sample's name string when it is the same.
      const prev = this.prevName;
      name = p - from === prev.length && s.startsWith(prev, from) ? prev : s.slice(from, p);
      this.pos = p;
      seriesEnd = p;
      this.skipWS();
    }
    let lStart = -1;
    let shape: Shape | undefined;
    let ranges: Int32Array | undefined;
    let rangesAt = 0;
    let override: string | undefined;
    let overrideAt = -1;
    if (s.charCodeAt(this.pos) === LBRACE) {
      this.pos++;
      lStart = this.pos;
      if (name === undefined) {
        // `{"name", labels…}`, the way UTF-8 names are written: take the
        // name first so the labels after it keep the fast path.
        this.skipWS();
        const q = this.pos;
        if (s.charCodeAt(q) === QUOTE) {
          const e = this.quotedEnd(q, this.limit);
          if (e < 0) this.fail("unterminated quoted name");
          this.pos = e;
          this.skipWS();
          const d = s.charCodeAt(this.pos);
          if (d === COMMA || d === RBRACE) {
            name = unquote(s, q, e);
            flags = UTF8_NAMES;
            this.pos++;
            lStart = d === COMMA ? this.pos : -1;
          } else {
            this.pos = q;
          }
        }
      }
      this.inlineName = undefined;
      if (lStart >= 0) {
        this.labelSet(name !== undefined);
        if (name === undefined) name = this.inlineName;
        seriesEnd = this.pos;
      } else {
        seriesEnd = this.pos;
        this.valueCount = 0;
        this.prevNameCount = 0;
        this.prevShape = undefined;
        this.sameNames = false;
        this.labelFlags = 0;
      }
      this.skipWS();
      flags |= this.labelFlags;
      if (this.shapes !== undefined && lStart >= 0) {
        shape = this.labelShape();
        const vals = this.valueOffsets;
        const nv = this.valueCount;
        if (this.chunkLen + nv > this.chunk.length) {
          this.chunk = new Int32Array(Math.max(32768, nv));
          this.chunkLen = 0;
        }
        ranges = this.chunk;
        rangesAt = this.chunkLen;
        for (let i = 0; i < nv; i++) ranges[rangesAt + i] = vals[i]!;
        this.chunkLen += nv;
      }
      const t = this.lastType;
      if ((t === "histogram" || t === "summary") && this.valueCount > 0) {
        overrideAt = this.floatLabelIndex(t === "histogram" ? "le" : "quantile", shape);
        if (overrideAt >= 0) {
          override = this.normalizeFloatLabel(overrideAt);
          if (override === undefined) overrideAt = -1;
        }
      }
    }
    if (name === undefined) this.fail("metric name not set");
    // Value: everything up to a blank, newline or '{'.
    const vStart = this.pos;
    let p = vStart;
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
    if (p === vStart) this.fail(`expected value after metric ${JSON.stringify(name)}`);
    let value: number | undefined;
    if (simpleInt && p - vStart <= 15) {
      value = int;
    } else {
      value = parseGoFloat(s.slice(vStart, p));
      if (value === undefined)
        this.fail(`invalid value "${s.slice(vStart, p)}" for metric ${JSON.stringify(name)}`);
    }
    const vEnd = p;
    this.pos = p;
    this.skipWS();
    let timestamp: number | undefined;
    let c = s.charCodeAt(this.pos);
    if (c !== NL && !Number.isNaN(c)) {
      timestamp = this.om ? this.omTimestamp() : this.promTimestamp();
      this.timestamped = true;
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
    // OpenMetrics lines are never copied verbatim (timestamps/exemplars
    // differ), nor lines whose le/quantile value Prometheus would normalize.
    const verbatim = !this.om && override === undefined;
    const end = verbatim ? Math.min(this.pos, this.limit) : -1;
    const smp = Sample.fromSource(
      s,
      name,
      lStart,
      value,
      vStart,
      vEnd,
      timestamp,
      verbatim ? lineStart : -1,
      end,
      shape,
      ranges,
      rangesAt,
      this.om ? undefined : this.spare,
    );
    smp.flags = flags;
    if (this.timestamped && !this.om) {
      // Prometheus refuses a sample without a timestamp whose series text
      // came earlier in the scrape, whatever that one's timestamp
      // (scrape_append_v2.go): the text is needed to tell. Only payloads with
      // timestamps can tell the difference.
      smp.flags |= RAW_HASH;
      smp.rawHash = hashRange(HASH_SEED, s, lineStart, seriesEnd);
    }
    if (override !== undefined) {
      smp.override = override;
      smp.overrideAt = overrideAt;
    }
    if (
      this.cache !== undefined &&
      timestamp === undefined &&
      vStart === seriesEnd + 1 &&
      s.charCodeAt(seriesEnd) === SP &&
      s.charCodeAt(vEnd) === NL
    ) {
      // `series value\n` exactly: what the cache can recognise next time.
      smp.keyStart = lineStart;
      smp.keyEnd = seriesEnd;
    }
    this.spare = undefined;
    if (this.om) {
      // OpenMetrics families are converted whole (see fromOpenMetrics).
      fam.samples.push(smp);
      this.curCount++;
      return;
    }
    if (this.curCount++ === 0) {
      if (this.cache !== undefined) this.contextOf(fam);
      this.callback(fam, undefined);
    }
    this.callback(undefined, smp);
  }

  /** Hands a family head or a sample to the visitor (its exceptions pass through untouched). */
  callback(head: Family | undefined, smp: Sample | undefined): void {
    try {
      if (head !== undefined) this.visitor.begin(head);
      else if (!this.visitor.sample(smp!)) this.spare = smp;
    } catch (err) {
      throw new CallbackError(err);
    }
  }

  /** The Shape of the label names just parsed (the previous one when they repeat). */
  labelShape(): Shape {
    if (this.sameNames && this.prevShape !== undefined) return this.prevShape;
    const names = this.prevNameOffsets; // labelSet swapped them
    const list: string[] = [];
    const n = this.prevNameCount;
    for (let i = 0; i < n; i += 2) list.push(this.nameAt(names, i));
    const shape = this.shapes!.intern(list);
    this.prevShape = shape;
    return shape;
  }

  /** The label name whose raw range is at `names[i]` (quoted names unquoted). */
  nameAt(names: number[], i: number): string {
    const a = names[i]!;
    const b = names[i + 1]!;
    return this.src.charCodeAt(a) === QUOTE ? unquote(this.src, a, b) : this.src.slice(a, b);
  }

  /** Index of the label named `target` in the sample just parsed, or -1. */
  floatLabelIndex(target: string, shape: Shape | undefined): number {
    if (shape !== undefined) return shape.indexOf(target);
    const names = this.prevNameOffsets;
    for (let i = 0; i < this.prevNameCount; i += 2) {
      if (this.nameAt(names, i) === target) return i >> 1;
    }
    return -1;
  }

  /**
   * Prometheus's parser rewrites the `le` of histogram samples and the
   * `quantile` of summary samples as FormatOpenMetricsFloat(ParseFloat(v))
   * (textparse normalizeFloatsInLabelValues): `le="1"` is stored as "1.0",
   * so rules, aggregation and the served text see "1.0". The type is the
   * last TYPE line's, whatever its name, as there. Returns the new value of
   * label i, or undefined when it stays.
   */
  normalizeFloatLabel(i: number): string | undefined {
    const s = this.src;
    const a = this.valueOffsets[2 * i]!;
    const b = this.valueOffsets[2 * i + 1]!;
    if (a >= 0 && isCanonicalFloat(s, a, b)) return undefined;
    const raw = a >= 0 ? s.slice(a, b) : unescapeLabelValue(s.slice(~a, b));
    let v = this.normalized.get(raw);
    if (v === undefined) {
      const f = parseGoFloatFull(raw);
      v = f === undefined ? raw : formatOpenMetricsFloat(f);
      if (this.normalized.size >= 1024) this.normalized.clear();
      this.normalized.set(detach(raw), v);
    }
    return v === raw ? undefined : v;
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
    return Math.trunc(v * 1000); // Go's int64(ts * 1000)
  }

  /**
   * Validates `name="value", …}` after the opening brace without building
   * strings (labels are materialised later, only if a stage needs them).
   * A quoted string followed by `,` or `}` is the metric name (UTF-8 names):
   * it goes to `inlineName`, an error when `hasName` or one came already.
   * Sets `labelFlags`.
   */
  labelSet(hasName: boolean): void {
    const s = this.src;
    // Scratch arrays are written by index and never truncated: setting
    // `length = 0` would drop their storage and regrow it on every line.
    const names = this.nameOffsets;
    let nn = 0;
    // Series of a family usually repeat the previous line's label names: while
    // they do, each name is one comparison (it was validated on that line, and
    // names matched in order cannot repeat each other).
    const prev = this.prevNameOffsets;
    const prevCount = this.prevNameCount;
    this.valueCount = 0;
    let same = true;
    let flags = 0;
    /** Whether a name so far was quoted (names are then compared unquoted). */
    let quoted = false;
    for (;;) {
      if (same && nn < prevCount) {
        const ps = prev[nn]!;
        const len = prev[nn + 1]! - ps;
        const ns = this.pos;
        if (
          s.charCodeAt(ns + len) === EQ &&
          s.charCodeAt(ns + len + 1) === QUOTE &&
          sameRange(s, ps, ns, len)
        ) {
          if (s.charCodeAt(ns) === QUOTE) {
            quoted = true;
            flags |= UTF8_NAMES;
            if (len === 2) flags |= EMPTY_LABEL_NAME;
          }
          names[nn++] = ns;
          names[nn++] = ns + len;
          this.pos = ns + len + 1;
          this.skipLabelValue();
          const c = s.charCodeAt(this.pos);
          if (c === COMMA) {
            this.pos++;
            continue;
          }
          if (c === RBRACE) {
            this.pos++;
            break;
          }
          // Blanks after the value: finish this label as below.
          same = false;
          this.skipWS();
          if (s.charCodeAt(this.pos) === COMMA) this.pos++;
          continue;
        }
        same = false;
      }
      this.skipWS();
      let c = s.charCodeAt(this.pos);
      if (c === RBRACE) {
        this.pos++;
        break;
      }
      const ns = this.pos;
      let p: number;
      let name: string | undefined;
      if (c === QUOTE) {
        p = this.quotedEnd(ns, this.limit);
        if (p < 0) this.fail("unterminated quoted label name");
        this.pos = p;
        this.skipWS();
        const d = s.charCodeAt(this.pos);
        if (d === COMMA || d === RBRACE) {
          // The metric name, inside the braces.
          if (hasName || this.inlineName !== undefined) this.fail("metric name already set");
          this.inlineName = unquote(s, ns, p);
          flags |= UTF8_NAMES;
          this.pos++;
          same = false;
          if (d === RBRACE) break;
          continue;
        }
        name = unquote(s, ns, p);
        if (name === "") flags |= EMPTY_LABEL_NAME;
        flags |= UTF8_NAMES;
        quoted = true;
      } else {
        if (!isLabelStart(c)) this.fail(`expected label name, got ${quoteChar(c)}`);
        p = ns + 1;
        while (isLabelChar(s.charCodeAt(p))) p++;
      }
      const len = p - ns;
      if (name === undefined ? len === 8 && s.startsWith("__name__", ns) : name === "__name__") {
        this.fail('label "__name__" is not allowed in a label set');
      }
      for (let i = 0; i < nn; i += 2) {
        const os = names[i]!;
        const dup = quoted
          ? this.nameAt(names, i) === (name ?? s.slice(ns, p))
          : names[i + 1]! - os === len && sameRange(s, os, ns, len);
        if (dup) this.fail(`duplicate label name ${JSON.stringify(name ?? s.slice(ns, p))}`);
      }
      names[nn++] = ns;
      names[nn++] = p;
      this.pos = p;
      this.skipWS();
      const shown = JSON.stringify(name ?? s.slice(ns, p));
      if (s.charCodeAt(this.pos) !== EQ) this.fail(`expected "=" after label name ${shown}`);
      this.pos++;
      this.skipWS();
      if (s.charCodeAt(this.pos) !== QUOTE) {
        this.fail(`expected quoted value for label ${shown}`);
      }
      this.skipLabelValue();
      this.skipWS();
      c = s.charCodeAt(this.pos);
      if (c === COMMA) this.pos++;
    }
    this.sameNames = same && nn === prevCount;
    // Keep this line's names for the next one.
    this.nameOffsets = prev;
    this.prevNameOffsets = names;
    this.prevNameCount = nn;
    const vals = this.valueOffsets;
    for (let i = 0; i < this.valueCount; i += 2) {
      if (vals[i] === vals[i + 1]) {
        flags |= EMPTY_LABEL_VALUE;
        break;
      }
    }
    this.labelFlags = flags;
  }

  /**
   * The end (just after the closing quote) of the quoted string opening at
   * `from`, as Prometheus's lexer reads one: `\` escapes any character but a
   * newline, a raw newline is part of the string. -1 when it does not close
   * before `end` (NEED_MORE when a stream may still bring the rest).
   */
  quotedEnd(from: number, end: number): number {
    const s = this.src;
    let p = from + 1;
    for (;;) {
      if (p >= end) {
        if (end >= this.limit && !this.final) throw NEED_MORE;
        return -1;
      }
      const c = s.charCodeAt(p);
      if (c === QUOTE) return p + 1;
      if (c === 0) return -1; // Prometheus's lexer refuses a NUL in a quoted name
      if (c === BACKSLASH) {
        if (p + 1 >= end) {
          if (end >= this.limit && !this.final) throw NEED_MORE;
          return -1;
        }
        const d = s.charCodeAt(p + 1);
        if (d === NL || d === 0) return -1;
        p += 2;
        continue;
      }
      p++;
    }
  }

  /** Skips a quoted label value starting at the opening quote, recording its range. */
  skipLabelValue(): void {
    const vals = this.valueOffsets;
    const s = this.src;
    let p = this.pos + 1;
    const start = p;
    // Fast path: jump to the next quote unless a backslash comes first.
    if (this.nextBackslash < p) {
      const b = s.indexOf("\\", p);
      this.nextBackslash = b < 0 ? s.length : b;
    }
    const limit = this.limit;
    const q = s.indexOf('"', p);
    if (q >= 0 && q < limit && q < this.nextBackslash) {
      vals[this.valueCount++] = start;
      vals[this.valueCount++] = q;
      this.pos = q + 1;
      return;
    }
    for (;;) {
      if (p >= limit) {
        if (!this.final) throw NEED_MORE;
        this.fail("unterminated label value");
      }
      const c = s.charCodeAt(p);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        if (p + 1 >= limit && !this.final) throw NEED_MORE;
        const d = s.charCodeAt(p + 1);
        if (d === NL || p + 1 >= limit) this.fail("invalid escape at end of line in label value");
        p += 2;
        continue;
      }
      p++;
    }
    vals[this.valueCount++] = ~start;
    vals[this.valueCount++] = p;
    this.pos = p + 1;
  }
}

function hasNul(s: string, a: number, b: number): boolean {
  for (let i = a; i < b; i++) if (s.charCodeAt(i) === 0) return true;
  return false;
}

/** The name quoted at s[a, b) (quotes included), with \\, \" and \n unescaped. */
function unquote(s: string, a: number, b: number): string {
  const raw = s.slice(a + 1, b - 1);
  return raw.indexOf("\\") >= 0 ? unescapeLabelValue(raw) : raw;
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
  // Prometheus 3 stores `_created` samples as series of their own (unless
  // its created-timestamp feature is on): they follow as an untyped family.
  const createdName = `${f.name}_created`;
  const withCreated = t === "counter" || t === "histogram" || t === "summary";
  const samples = withCreated ? f.samples.filter((s) => s.name !== createdName) : f.samples;
  const created: Family[] =
    withCreated && samples.length !== f.samples.length
      ? [
          {
            name: createdName,
            type: "untyped",
            typed: false,
            help: undefined,
            samples: f.samples.filter((s) => s.name === createdName),
          },
        ]
      : [];
  return [...convertOpenMetrics(f, t, samples), ...created];
}

function convertOpenMetrics(f: Family, t: OMType, samples: Sample[]): Family[] {
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
