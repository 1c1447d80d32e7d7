// Writes families as Prometheus text exposition 0.0.4, the way client_golang's
// expfmt does: HELP then TYPE, label values escaped (\\ \" \n), HELP escaped
// (\\ \n), values in Go's shortest 'g' form (1e+06, NaN, +Inf), timestamps as
// integer milliseconds. Samples whose value is untouched are written with the
// exact text upstream sent.
import type { Family, Sample } from "../model/model.ts";

export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

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

/** Go's strconv.FormatFloat(v, 'g', -1, 64), as used by expfmt. */
export function formatGoFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const e = v.toExponential(); // shortest round-trip digits, e.g. "1.5e+7"
  const at = e.indexOf("e");
  const exp = Number(e.slice(at + 1));
  // Go uses the exponent form below 1e-4 and from 1e+06 on (JS only from 1e21),
  // with at least two exponent digits.
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? "-" : "+";
    const digits = String(Math.abs(exp)).padStart(2, "0");
    return `${e.slice(0, at)}e${sign}${digits}`;
  }
  return String(v);
}

/**
 * The series part of a changed or computed sample's line — `name{a="1",b="2"}`
 * in label order — cached on the sample (it is also the duplicate check's key).
 */
export function seriesText(s: Sample): string {
  if (s.series !== undefined) return s.series;
  let t = s.name;
  const l = s.labels;
  if (l.length > 0) {
    t += "{";
    for (let i = 0; i < l.length; i += 2) {
      if (i > 0) t += ",";
      t += `${l[i]}="${escapeLabelValue(l[i + 1]!)}"`;
    }
    t += "}";
  }
  s.series = t;
  return t;
}

/**
 * Writes exposition text into one growing Buffer. Lines of untouched samples
 * are copied from the scraped text, adjacent lines as one run — as bytes
 * straight from the scraped Buffer when that was pure ASCII (character and
 * byte offsets then agree). Joining millions of small strings into one and
 * encoding it afterwards costs more than the whole parse; this does not.
 */
export class ExpositionWriter {
  #buf: Buffer;
  #len = 0;
  readonly #srcText: string | undefined;
  readonly #srcBytes: Uint8Array | undefined;

  /** Growth beyond this size goes step by step (the output is rarely larger than the input). */
  readonly #expected: number;

  /**
   * `bytes` must be the UTF-8 form of `text` and pure ASCII (same length) to
   * be used. `expectedSize` (say, the input's size) bounds how far the buffer
   * grows ahead of need; it starts small, since aggregation usually makes the
   * output a fraction of the input.
   */
  constructor(source?: { text: string; bytes: Uint8Array | undefined }, expectedSize = 64 * 1024) {
    this.#expected = Math.max(1024, expectedSize);
    this.#buf = Buffer.allocUnsafe(Math.min(this.#expected, 256 * 1024));
    this.#srcText = source?.text;
    this.#srcBytes =
      source?.bytes !== undefined && source.bytes.length === source.text.length
        ? source.bytes
        : undefined;
  }

  #reserve(n: number): void {
    const need = this.#len + n;
    if (need <= this.#buf.length) return;
    const doubled = this.#buf.length * 2;
    const next = Buffer.allocUnsafe(
      Math.max(
        need,
        doubled <= this.#expected ? doubled : Math.max(this.#expected, Math.ceil(need * 1.25)),
      ),
    );
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  write(s: string): void {
    // UTF-16 code units → at most 3 UTF-8 bytes each.
    this.#reserve(s.length * 3);
    this.#len += this.#buf.write(s, this.#len, "utf8");
  }

  /** Copies [start, end) of the scraped text `src`. */
  copy(src: string, start: number, end: number): void {
    if (src === this.#srcText && this.#srcBytes !== undefined) {
      this.#reserve(end - start);
      this.#buf.set(this.#srcBytes.subarray(start, end), this.#len);
      this.#len += end - start;
    } else {
      this.write(src.slice(start, end));
    }
    if (end === src.length && src.charCodeAt(end - 1) !== 10) this.write("\n");
  }

  writeFamily(f: Family): void {
    if (f.help !== undefined) this.write(`# HELP ${f.name} ${escapeHelp(f.help)}\n`);
    if (f.typed) this.write(`# TYPE ${f.name} ${f.type}\n`);
    let runSrc: string | undefined;
    let runStart = -1;
    let runEnd = -1;
    for (const smp of f.samples) {
      if (smp.start >= 0) {
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
      let line = seriesText(smp);
      line += " ";
      line += smp.vStart >= 0 ? smp.src!.slice(smp.vStart, smp.vEnd) : formatGoFloat(smp.value);
      if (smp.timestamp !== undefined) line += ` ${smp.timestamp}`;
      line += "\n";
      this.write(line);
    }
    if (runSrc !== undefined) this.copy(runSrc, runStart, runEnd);
  }

  /** The bytes written (a view on the internal buffer). */
  finish(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

/** The whole exposition as one string. */
export function serialize(families: readonly Family[]): string {
  const w = new ExpositionWriter();
  for (const f of families) w.writeFamily(f);
  return w.finish().toString("utf8");
}
