// Reads the label section of a parsed sample without building strings: the
// label names become an interned Shape (the same object for every series of
// the same layout), the values stay offsets into the scraped text. Relabel
// templates and aggregation read values through here, so a series that is
// aggregated away never has its per-workspace values (username, workspace
// name…) copied out of the payload at all.
import { type Sample, unescapeLabelValue } from "./model.ts";
import { type Shape, ShapeTable } from "./shape.ts";

/**
 * The labels of one sample, as its Shape plus, per label i, the value's
 * [start, end) in `src` at ranges[base + 2i], ranges[base + 2i + 1] (start
 * stored as ~start when the value holds escapes), as the parser recorded
 * them while validating the line (ParseOptions.shapes); or the value strings,
 * for samples without such a record.
 */
export class LabelScan {
  readonly shapes: ShapeTable;
  shape: Shape;
  #src = "";
  #ranges: Int32Array = new Int32Array(0);
  #base = 0;
  /** Value strings, when the sample is not backed by text. */
  #strs: string[] | undefined;
  /** A value that differs from the text (Sample.override) and its label index. */
  #override = "";
  #overrideAt = -1;

  constructor(shapes = new ShapeTable()) {
    this.shapes = shapes;
    this.shape = shapes.empty;
  }

  /** Forgets per-scrape positions (so no scraped payload stays referenced). */
  release(): void {
    this.#src = "";
    this.#override = "";
    this.#overrideAt = -1;
    this.#strs = undefined;
    this.#ranges = new Int32Array(0);
  }

  /** Points at the labels of `s`; afterwards value(i) etc. describe them. */
  scan(s: Sample): void {
    const src = s.src;
    if (src === undefined || s.labelsChanged || (s.shape === undefined && s.lStart >= 0)) {
      // Computed, changed, or parsed without ParseOptions.shapes: by the strings.
      this.#fromStrings(s.labels);
      return;
    }
    this.#strs = undefined;
    this.#src = src;
    this.#overrideAt = s.overrideAt;
    if (s.overrideAt >= 0) this.#override = s.override!;
    if (s.shape === undefined) {
      this.shape = this.shapes.empty;
      return;
    }
    this.shape = s.shape;
    this.#ranges = s.ranges!;
    this.#base = s.rangesAt;
  }

  /** The payload text the ranges point into. */
  get src(): string {
    return this.#src;
  }

  /**
   * Where label i's value starts in `src`, or -1 when it must be read with
   * value() (escaped, overridden, or not backed by text); see valueEnd.
   */
  valueRange(i: number): number {
    if (this.#strs !== undefined || i === this.#overrideAt) return -1;
    const a = this.#ranges[this.#base + 2 * i]!;
    return a >= 0 ? a : -1;
  }

  /** Where label i's value ends in `src` (when valueRange(i) >= 0). */
  valueEnd(i: number): number {
    return this.#ranges[this.#base + 2 * i + 1]!;
  }

  /** The value of label i as a string (copied out of the payload). */
  value(i: number): string {
    const strs = this.#strs;
    if (strs !== undefined) return strs[i]!;
    if (i === this.#overrideAt) return this.#override;
    const j = this.#base + 2 * i;
    const a = this.#ranges[j]!;
    const b = this.#ranges[j + 1]!;
    return a >= 0 ? this.#src.slice(a, b) : unescapeLabelValue(this.#src.slice(~a, b));
  }

  /** Whether label i's value equals `v`. */
  valueEquals(i: number, v: string): boolean {
    const strs = this.#strs;
    if (strs !== undefined) return strs[i] === v;
    if (i === this.#overrideAt) return this.#override === v;
    const j = this.#base + 2 * i;
    const a = this.#ranges[j]!;
    if (a < 0) return this.value(i) === v;
    return this.#ranges[j + 1]! - a === v.length && this.#src.startsWith(v, a);
  }

  /** Mixes label i's value into an FNV-1a hash. */
  hashValue(h: number, i: number): number {
    const strs = this.#strs;
    if (strs !== undefined) return hashString(h, strs[i]!);
    if (i === this.#overrideAt) return hashString(h, this.#override);
    const j = this.#base + 2 * i;
    const a = this.#ranges[j]!;
    if (a < 0) return hashString(h, this.value(i));
    return hashRange(h, this.#src, a, this.#ranges[j + 1]!);
  }

  #fromStrings(l: readonly string[]): void {
    this.#overrideAt = -1;
    const names: string[] = [];
    const strs: string[] = [];
    for (let i = 0; i < l.length; i += 2) {
      names.push(l[i]!);
      strs.push(l[i + 1]!);
    }
    this.#strs = strs;
    this.shape = this.shapes.intern(names);
  }
}

/** FNV-1a over [start, end) of a string's UTF-16 code units, closed with a separator. */
export function hashRange(h: number, s: string, start: number, end: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return Math.imul(h ^ 0xffff, 16777619);
}

/** FNV-1a over a whole string (see hashRange). */
export function hashString(h: number, s: string): number {
  return hashRange(h, s, 0, s.length);
}

export const HASH_SEED = 0x811c9dc5 | 0;
