// Reads the label section of a parsed sample without building strings: the
// label names become an interned Shape (the same object for every series of
// the same layout), the values stay offsets into the scraped text. Relabel
// templates and aggregation read values through here, so a series that is
// aggregated away never has its per-workspace values (username, workspace
// name…) copied out of the payload at all.
import { type Sample, unescapeLabelValue } from "./model.ts";
import { detach } from "./regex.ts";

/** One label-name layout, in exposition order. Interned per pipeline (ShapeTable). */
export class Shape {
  readonly names: readonly string[];
  /** Per metric name: relabel-template state (see relabel-template.ts). */
  readonly byName = new Map<string, unknown>();

  constructor(names: readonly string[]) {
    this.names = names;
  }

  indexOf(name: string): number {
    return this.names.indexOf(name);
  }
}

/** Bound on interned shapes; the table starts over when it fills. */
const SHAPE_LIMIT = 4096;

/** Interns label-name layouts so equal layouts are one object. */
export class ShapeTable {
  readonly #shapes = new Map<string, Shape>();
  readonly empty: Shape;

  constructor() {
    this.empty = this.intern([]);
  }

  /** The shape with these names (detached from any payload). */
  intern(names: string[]): Shape {
    const key = names.join(",");
    let sh = this.#shapes.get(key);
    if (sh !== undefined) return sh;
    if (this.#shapes.size >= SHAPE_LIMIT) this.#shapes.clear();
    sh = new Shape(names.map(detach));
    this.#shapes.set(key, sh);
    return sh;
  }
}

/**
 * The labels of one sample, as its Shape plus, per label i, the value's
 * [start, end) in `src` at ranges[base + 2i], ranges[base + 2i + 1] (start
 * stored as ~start when the value holds escapes), or the value strings for
 * samples not backed by scraped text. The parser records the ranges while it
 * validates a line (ParseOptions.shapes); otherwise scan() finds them.
 */
export class LabelScan {
  readonly shapes: ShapeTable;
  shape: Shape;
  #src = "";
  #ranges: Int32Array = new Int32Array(32);
  #base = 0;
  /** Value strings, when the sample is not backed by text. */
  #strs: string[] | undefined;
  /** Own buffer for scanned ranges (the parser's are used as they are). */
  #own: Int32Array = new Int32Array(32);
  /** Offset of the next backslash at or after the last value scanned (-1 unknown). */
  #nextBackslash = -1;
  #scanned = "";

  constructor(shapes = new ShapeTable()) {
    this.shapes = shapes;
    this.shape = shapes.empty;
  }

  /** Forgets per-scrape positions (so no scraped payload stays referenced). */
  release(): void {
    this.#src = "";
    this.#scanned = "";
    this.#strs = undefined;
    this.#ranges = this.#own;
    this.#nextBackslash = -1;
  }

  /** Points at the labels of `s`; afterwards value(i) etc. describe them. */
  scan(s: Sample): void {
    const src = s.src;
    if (src === undefined || s.labelsChanged) {
      this.#fromStrings(s.labels);
      return;
    }
    this.#strs = undefined;
    this.#src = src;
    if (s.lStart < 0) {
      this.shape = this.shapes.empty;
      return;
    }
    if (s.shape !== undefined) {
      this.shape = s.shape;
      this.#ranges = s.ranges!;
      this.#base = s.rangesAt;
      return;
    }
    if (src !== this.#scanned) {
      this.#scanned = src;
      this.#nextBackslash = -1;
    }
    this.#ranges = this.#own;
    this.#base = 0;
    this.#scanText(src, s.lStart);
  }

  /** The value of label i as a string (copied out of the payload). */
  value(i: number): string {
    const strs = this.#strs;
    if (strs !== undefined) return strs[i]!;
    const j = this.#base + 2 * i;
    const a = this.#ranges[j]!;
    const b = this.#ranges[j + 1]!;
    return a >= 0 ? this.#src.slice(a, b) : unescapeLabelValue(this.#src.slice(~a, b));
  }

  /** Whether label i's value equals `v`. */
  valueEquals(i: number, v: string): boolean {
    const strs = this.#strs;
    if (strs !== undefined) return strs[i] === v;
    const j = this.#base + 2 * i;
    const a = this.#ranges[j]!;
    if (a < 0) return this.value(i) === v;
    return this.#ranges[j + 1]! - a === v.length && this.#src.startsWith(v, a);
  }

  /** Mixes label i's value into an FNV-1a hash. */
  hashValue(h: number, i: number): number {
    const strs = this.#strs;
    if (strs !== undefined) return hashString(h, strs[i]!);
    const j = this.#base + 2 * i;
    const a = this.#ranges[j]!;
    if (a < 0) return hashString(h, this.value(i));
    const s = this.#src;
    const end = this.#ranges[j + 1]!;
    for (let p = a; p < end; p++) h = Math.imul(h ^ s.charCodeAt(p), 16777619);
    return Math.imul(h ^ 0xffff, 16777619);
  }

  #fromStrings(l: readonly string[]): void {
    const names: string[] = [];
    const strs: string[] = [];
    for (let i = 0; i < l.length; i += 2) {
      names.push(l[i]!);
      strs.push(l[i + 1]!);
    }
    this.#strs = strs;
    this.shape = this.shapes.intern(names);
  }

  #scanText(s: string, at: number): void {
    let n = 0;
    let p = at;
    // While the names follow the previous series' shape, a name is one
    // comparison; `guess` drops to undefined at the first difference.
    let guess: readonly string[] | undefined = this.shape.names;
    for (;;) {
      let c: number;
      const name = guess?.[n];
      if (2 * n + 2 > this.#own.length) this.#grow();
      if (name !== undefined && s.charCodeAt(p + name.length) === 61 && s.startsWith(name, p)) {
        p += name.length;
      } else {
        guess = undefined;
        c = s.charCodeAt(p);
        while (c === 32 || c === 9) c = s.charCodeAt(++p);
        if (c === 125) break; // }
        while (c !== 61 && c !== 32 && c !== 9) c = s.charCodeAt(++p);
      }
      p = s.indexOf('"', p) + 1;
      // The parser validated the text: the value ends at the next quote unless
      // a backslash comes first.
      if (this.#nextBackslash < p) {
        const b = s.indexOf("\\", p);
        this.#nextBackslash = b < 0 ? s.length : b;
      }
      let q = s.indexOf('"', p);
      let start = p;
      if (q > this.#nextBackslash) {
        q = p;
        for (c = s.charCodeAt(q); c !== 34; c = s.charCodeAt(++q)) if (c === 92) q++;
        this.#nextBackslash = -1;
        start = ~p;
      }
      this.#own[2 * n] = start;
      this.#own[2 * n + 1] = q;
      n++;
      p = q + 1;
      c = s.charCodeAt(p);
      if (c === 44) {
        p++;
        continue;
      }
      if (c === 125) break;
      while (c === 32 || c === 9) c = s.charCodeAt(++p);
      if (c === 44) p++;
    }
    if (guess !== undefined && guess.length === n) return;
    this.shape = this.#shapeOf(s, at, n);
  }

  /** The shape of the n labels starting at `at` (names re-read: rare, on a layout change). */
  #shapeOf(s: string, at: number, n: number): Shape {
    const names: string[] = [];
    let p = at;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(p);
      while (c === 32 || c === 9 || c === 44) c = s.charCodeAt(++p);
      const ns = p;
      while (c !== 61 && c !== 32 && c !== 9) c = s.charCodeAt(++p);
      names.push(s.slice(ns, p));
      p = this.#own[2 * i + 1]! + 1; // after the value's closing quote
    }
    return this.shapes.intern(names);
  }

  #grow(): void {
    const b = new Int32Array(this.#own.length * 2);
    b.set(this.#own);
    this.#own = b;
    this.#ranges = this.#own;
  }
}

/** FNV-1a over a string's UTF-16 code units, closed with a separator. */
export function hashString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return Math.imul(h ^ 0xffff, 16777619);
}

export const HASH_SEED = 0x811c9dc5 | 0;
