// Series identity as Prometheus has it: a series is its label *set* — the
// metric name and the labels, in any order (`m{a="1",b="2"}` and
// `m{b="2",a="1"}` are one series). Within one scrape Prometheus stores the
// first sample of a series for a timestamp and drops later ones with the same
// or an older timestamp (the scrape loop's duplicate check and the TSDB head's
// commit, see test/tools/promref/README.md); the exporter drops them before
// serving, so what it serves is what Prometheus would have stored.
//
// A series is identified by a 64-bit hash of its sorted label set (two
// independent 32-bit lanes over the UTF-16 text, every string length-prefixed)
// kept in an open-addressing table of typed arrays: no string is built and no
// object allocated per series. Two different label sets share a hash with a
// probability of about n²/2⁶⁵ per scrape (3·10⁻⁸ for a million series).
import type { LabelScan } from "./label-scan.ts";
import { RAW_HASH, type Sample } from "./model.ts";
import type { Shape } from "./shape.ts";

/** Per shape: label indexes in name order (computed once per interned shape). */
const sortedOrder = new WeakMap<Shape, Int32Array>();

function orderOf(shape: Shape): Int32Array {
  let o = sortedOrder.get(shape);
  if (o === undefined) {
    const names = shape.names;
    o = Int32Array.from(names.keys()).sort((a, b) =>
      names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0,
    );
    sortedOrder.set(shape, o);
  }
  return o;
}

/** The samples of one scrape seen so far, by label set, with their newest timestamp. */
export class SeriesIdentity {
  #h1 = new Int32Array(1024);
  #h2 = new Int32Array(1024);
  /** Newest timestamp admitted (a sample without one is +Infinity: the scrape's time). */
  #t = new Float64Array(1024);
  #used = new Uint8Array(1024);
  #size = 0;
  // The hash being computed.
  #a = 0;
  #b = 0;
  /** The last hash() taken. */
  h1 = 0;
  h2 = 0;
  /** Scratch: label order of a sample without a shape. */
  #order: number[] = [];
  /** Series texts (hashed) of samples with a timestamp (see admit). */
  readonly #timestampedTexts = new Set<number>();

  /** Starts a new scrape: forgets every series, keeps the table's size. */
  reset(): void {
    if (this.#size > 0) {
      this.#used.fill(0);
      this.#size = 0;
    }
    this.#timestampedTexts.clear();
  }

  /**
   * Whether Prometheus would store `s`: false when a sample of the same
   * series with the same or a newer timestamp came before. Records it if so.
   */
  admit(s: Sample, scan: LabelScan): boolean {
    const raw = (s.flags & RAW_HASH) !== 0;
    this.hash(s, scan);
    return this.admitHash(this.h1, this.h2, s.timestamp, raw, s.rawHash);
  }

  /**
   * admit() for a series whose label-set hash (hash()) was taken before:
   * `raw` says whether `rawHash` (the series text as written) is known.
   */
  admitHash(
    h1: number,
    h2: number,
    timestamp: number | undefined,
    raw: boolean,
    rawHash: number,
  ): boolean {
    // The scrape loop refuses a sample without a timestamp whose series text
    // (as written) came before in the scrape, whatever that one's timestamp.
    // Without timestamps this is the label-set rule below; with them it is not.
    if (raw) {
      if (timestamp !== undefined) this.#timestampedTexts.add(rawHash);
      else if (this.#timestampedTexts.has(rawHash)) return false;
    }
    const t = timestamp ?? Number.POSITIVE_INFINITY;
    let mask = this.#used.length - 1;
    let i = h1 & mask;
    while (this.#used[i] === 1) {
      if (this.#h1[i] === h1 && this.#h2[i] === h2) {
        if (t <= this.#t[i]!) return false;
        this.#t[i] = t;
        return true;
      }
      i = (i + 1) & mask;
    }
    this.#used[i] = 1;
    this.#h1[i] = h1;
    this.#h2[i] = h2;
    this.#t[i] = t;
    if (++this.#size * 2 > this.#used.length) {
      this.#grow();
      mask = this.#used.length - 1;
    }
    return true;
  }

  /**
   * Takes back the admission of a label set with no timestamp (its lines
   * were not served after all: see the pipeline's direct lines).
   */
  forget(h1: number, h2: number): void {
    const used = this.#used;
    const mask = used.length - 1;
    let i = h1 & mask;
    while (used[i] === 1 && !(this.#h1[i] === h1 && this.#h2[i] === h2)) i = (i + 1) & mask;
    if (used[i] !== 1) return;
    // Backward-shift deletion keeps every probe sequence unbroken.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (used[j] !== 1) break;
      const k = this.#h1[j]! & mask;
      const between = i <= j ? i < k && k <= j : i < k || k <= j;
      if (between) continue;
      this.#h1[i] = this.#h1[j]!;
      this.#h2[i] = this.#h2[j]!;
      this.#t[i] = this.#t[j]!;
      i = j;
    }
    used[i] = 0;
    this.#size--;
  }

  #grow(): void {
    const h1 = this.#h1;
    const h2 = this.#h2;
    const t = this.#t;
    const used = this.#used;
    const n = used.length * 2;
    this.#h1 = new Int32Array(n);
    this.#h2 = new Int32Array(n);
    this.#t = new Float64Array(n);
    this.#used = new Uint8Array(n);
    const mask = n - 1;
    for (let j = 0; j < used.length; j++) {
      if (used[j] !== 1) continue;
      let i = h1[j]! & mask;
      while (this.#used[i] === 1) i = (i + 1) & mask;
      this.#used[i] = 1;
      this.#h1[i] = h1[j]!;
      this.#h2[i] = h2[j]!;
      this.#t[i] = t[j]!;
    }
  }

  /** The label-set hash of `s`, left in h1 and h2. */
  hash(s: Sample, scan: LabelScan): void {
    this.#a = 0x811c9dc5 | 0;
    this.#b = 0x2545f491 | 0;
    this.#str(s.name, 0, s.name.length);
    if (s.src !== undefined && !s.labelsChanged && s.shape !== undefined) {
      // Untouched: names from the interned shape, values read in the payload.
      scan.scan(s);
      const names = scan.shape.names;
      for (const i of orderOf(scan.shape)) {
        this.#str(names[i]!, 0, names[i]!.length);
        const r = scan.valueRange(i);
        if (r >= 0) this.#str(scan.src, r, scan.valueEnd(i));
        else {
          const v = scan.value(i);
          this.#str(v, 0, v.length);
        }
      }
      this.h1 = this.#a;
      this.h2 = this.#b;
      return;
    }
    const l = s.labels;
    const order = this.#order;
    order.length = 0;
    // Insertion sort of the label indexes by name (series have few labels).
    for (let i = 0; i < l.length; i += 2) {
      let j = order.length;
      order.push(i);
      while (j > 0 && l[order[j - 1]!]! > l[i]!) {
        order[j] = order[j - 1]!;
        j--;
      }
      order[j] = i;
    }
    for (const i of order) {
      this.#str(l[i]!, 0, l[i]!.length);
      this.#str(l[i + 1]!, 0, l[i + 1]!.length);
    }
    this.h1 = this.#a;
    this.h2 = this.#b;
  }

  /** Mixes the length of [from, to) of `t` and its code units into both lanes. */
  #str(t: string, from: number, to: number): void {
    let a = this.#a;
    let b = this.#b;
    const n = to - from;
    a = Math.imul(a ^ n, 16777619);
    b = Math.imul(b ^ n, 0x85ebca6b);
    b ^= b >>> 13;
    for (let i = from; i < to; i++) {
      const c = t.charCodeAt(i);
      a = Math.imul(a ^ c, 16777619);
      b = Math.imul(b ^ c, 0x85ebca6b);
      b ^= b >>> 13;
    }
    this.#a = a;
    this.#b = b;
  }
}
