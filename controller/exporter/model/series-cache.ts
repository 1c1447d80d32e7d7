// What the pipeline made of a series last time, by the series' raw text — the
// idea of Prometheus's scrapeCache (scrape/scrape.go): coderd sends the same
// series every scrape, so a line whose name-and-labels bytes were seen before,
// in the same family, costs a lookup and a copy instead of parsing, relabeling,
// hashing and serializing it again.
//
// A key is the line's bytes from its start to the blank before the value (the
// series text as written). An entry holds the outcome the slow path computed:
// dropped (and why), or the output line's series text, its label-set identity
// (for duplicates) and where it goes. Key and output bytes live together in
// 1 MiB blocks outside the JS heap; the output is stored as "the first n bytes
// of the key, then these bytes" since rules mostly add or change labels near
// the end. Entries not seen for a scrape are dropped when they make up half
// the cache, and the cache stops growing at its byte budget (those series
// then take the slow path: correct, only slower).

/** The family a series was seen in: name, type, HELP and the parser state that decides what its lines mean. */
export class FamilyContext {
  readonly key: string;
  constructor(key: string) {
    this.key = key;
  }
}

/** Why a cached series is dropped (the pipeline's drop reasons it can replay). */
export const KEEP = 0;
export const DROP_METRICS = 1;
export const DROP_RELABEL = 2;

/** SeriesEntry.flags: the outcome (two bits) and what the writer needs to know. */
const OUTCOME = 3;
/** Flags a written line keeps (see the pipeline's direct lines). */
export const UTF8 = 4;
export const UNSTABLE_LE = 8;
export const UNSTABLE_QUANTILE = 16;
const CACHED = 32;

/** What few entries have (kept apart: most entries are one small object each). */
interface EntryExtra {
  labelNames: readonly string[];
  routeNames: readonly string[];
  invalidTargets: number;
  timestamp: number | undefined;
  rawHash: number;
  hasRawHash: boolean;
}

const NO_NAMES: readonly string[] = [];

/**
 * One series as the pipeline handled it: a cached entry (found by its key),
 * or a line of this scrape only (not cached). Kept small — there is one per
 * series, 8 bytes a field — with every field a pointer or a 32-bit integer
 * (which V8 keeps unboxed).
 */
export class SeriesEntry {
  /** The family context it was seen in. */
  ctx: FamilyContext | undefined = undefined;
  /** Metric name as scraped (interned). */
  name: string;
  /** Output metric name, after relabeling (interned). */
  outName = "";
  /** Block holding the key, then the rest of the output series text. */
  blk: Uint8Array = EMPTY;
  keyAt = 0;
  keyLen = 0;
  /** The output series text is blk[keyAt, keyAt+common) then blk[keyAt+keyLen, +restLen). */
  common = 0;
  restLen = 0;
  /** Label-set identity (see SeriesIdentity). */
  h1 = 0;
  h2 = 0;
  /** Hash of the key. */
  keyHash = 0;
  /** Last scrape it was seen in. */
  seen = 0;
  /** The entry that followed it last time (tried before hashing). */
  next: SeriesEntry | undefined = undefined;
  flags = 0;
  extra: EntryExtra | undefined = undefined;

  constructor(name: string) {
    this.name = name;
  }

  /** KEEP, DROP_METRICS or DROP_RELABEL. */
  get outcome(): number {
    return this.flags & OUTCOME;
  }
  set outcome(o: number) {
    this.flags = (this.flags & ~OUTCOME) | o;
  }
  /** Output names that need quoting (UTF-8 names). */
  get utf8(): boolean {
    return (this.flags & UTF8) !== 0;
  }
  set utf8(v: boolean) {
    this.#flag(UTF8, v);
  }
  /**
   * An `le` (in a histogram) or `quantile` (in a summary) Prometheus would
   * read back differently (see the writer's floatLabelsStable).
   */
  get unstableLe(): boolean {
    return (this.flags & UNSTABLE_LE) !== 0;
  }
  set unstableLe(v: boolean) {
    this.#flag(UNSTABLE_LE, v);
  }
  get unstableQuantile(): boolean {
    return (this.flags & UNSTABLE_QUANTILE) !== 0;
  }
  set unstableQuantile(v: boolean) {
    this.#flag(UNSTABLE_QUANTILE, v);
  }
  /** Whether the entry is in the cache (complete and findable). */
  get cached(): boolean {
    return (this.flags & CACHED) !== 0;
  }
  set cached(v: boolean) {
    this.#flag(CACHED, v);
  }

  #flag(bit: number, v: boolean): void {
    this.flags = v ? this.flags | bit : this.flags & ~bit;
  }

  #extra(): EntryExtra {
    this.extra ??= {
      labelNames: NO_NAMES,
      routeNames: NO_NAMES,
      invalidTargets: 0,
      timestamp: undefined,
      rawHash: 0,
      hasRawHash: false,
    };
    return this.extra;
  }

  /** Label names as scraped (an aggregate rule may select by them). */
  get labelNames(): readonly string[] {
    return this.extra?.labelNames ?? NO_NAMES;
  }
  set labelNames(v: readonly string[]) {
    if (v.length > 0 || this.extra !== undefined) this.#extra().labelNames = v;
  }
  /** Label names where a renamed series picks its family (see the pipeline's route). */
  get routeNames(): readonly string[] {
    return this.extra?.routeNames ?? NO_NAMES;
  }
  set routeNames(v: readonly string[]) {
    if (v.length > 0 || this.extra !== undefined) this.#extra().routeNames = v;
  }
  /** Target labels the rules skipped as invalid (counted per series). */
  get invalidTargets(): number {
    return this.extra?.invalidTargets ?? 0;
  }
  set invalidTargets(v: number) {
    if (v !== 0 || this.extra !== undefined) this.#extra().invalidTargets = v;
  }
  /** Lines of this scrape only: timestamp (undefined: none) and raw-text hash (see SeriesIdentity). */
  get timestamp(): number | undefined {
    return this.extra?.timestamp;
  }
  get rawHash(): number {
    return this.extra?.rawHash ?? 0;
  }
  get hasRawHash(): boolean {
    return this.extra?.hasRawHash ?? false;
  }
  /** Sets what a line of this scrape carries for duplicate checks. */
  timed(timestamp: number | undefined, hasRawHash: boolean, rawHash: number): void {
    if (timestamp === undefined && !hasRawHash && this.extra === undefined) return;
    const x = this.#extra();
    x.timestamp = timestamp;
    x.hasRawHash = hasRawHash;
    x.rawHash = rawHash;
  }
}

const EMPTY = new Uint8Array(0);
const BLOCK = 1 << 20;
/** JS heap an entry takes (its object: 16 fields of 8 bytes, and its slot), counted in the budget. */
const ENTRY_BYTES = 168;
/** Family contexts kept (a payload has a few hundred families). */
const CONTEXT_LIMIT = 16384;

/** FNV-1a over bytes, then a final mix. */
export function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

/** Appends bytes to a list of fixed blocks that never move (entries point into them). */
export class ByteBlocks {
  #blocks: Uint8Array[] = [];
  #cur: Uint8Array = EMPTY;
  #used = 0;
  /** Bytes held in blocks. */
  allocated = 0;
  /** Where the last reserve() put its room. */
  block: Uint8Array = EMPTY;
  at = 0;

  /** Whether n bytes fit in the current block. */
  fits(n: number): boolean {
    return this.#used + n <= this.#cur.length;
  }

  /** Room for n bytes in one block: afterwards `block`/`at` say where; commit(n) takes them. */
  reserve(n: number): void {
    if (this.#used + n > this.#cur.length) {
      this.#cur = Buffer.allocUnsafeSlow(Math.max(BLOCK, n));
      this.#blocks.push(this.#cur);
      this.allocated += this.#cur.length;
      this.#used = 0;
    }
    this.block = this.#cur;
    this.at = this.#used;
  }

  commit(n: number): void {
    this.#used += n;
  }

  /** Forgets everything but the first block, which is reused (a large scrape's blocks are not pinned). */
  reset(): void {
    const first = this.#blocks[0];
    this.#blocks = first === undefined ? [] : [first];
    this.allocated = first?.length ?? 0;
    this.#cur = first ?? EMPTY;
    this.#used = 0;
  }
}

export interface SeriesCacheOptions {
  /** Bytes of keys and output text at most (the cache stops growing there). */
  maxBytes: number;
}

/** Raw series text → SeriesEntry, per pipeline. One scrape at a time. */
export class SeriesCache {
  readonly #maxBytes: number;
  #blocks = new ByteBlocks();
  /** Open addressing: entry index + 1 (0 = empty). */
  #slots = new Int32Array(1 << 12);
  #entries: SeriesEntry[] = [];
  /** Bytes of entries still referenced by the table. */
  #bytes = 0;
  #scrape = 1;
  /** The entry found last (its `next` is tried first). */
  #last: SeriesEntry | undefined = undefined;
  readonly #contexts = new Map<string, FamilyContext>();
  /** The key find() last missed, and its hash. */
  #missBlk: Uint8Array | undefined;
  #missAt = 0;
  #missHash = 0;

  constructor(options: SeriesCacheOptions) {
    this.#maxBytes = options.maxBytes;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Memory held: key and output bytes, and the entries themselves. */
  get bytes(): number {
    return this.#blocks.allocated + this.#entries.length * ENTRY_BYTES;
  }

  /** Names entries are made with, interned (the parser compares them with the last line's). */
  readonly #names = new Map<string, string>();

  /** `name` as the one string all entries with that name share. */
  intern(name: string): string {
    const n = this.#names.get(name);
    if (n !== undefined) return n;
    if (this.#names.size >= CONTEXT_LIMIT) this.#names.clear();
    this.#names.set(name, name);
    return name;
  }

  /**
   * The entry that followed the last one found, when the line at `start` of
   * `b` has its key (the key, one blank, then the newline within 64 bytes):
   * then `tailEnd` is set to just after the newline. The common case costs
   * one comparison: coderd writes its series in the same order every time.
   */
  predicted(b: Uint8Array, start: number, to: number): SeriesEntry | undefined {
    const e = this.#last?.next;
    if (e === undefined || !e.cached) return undefined;
    const k = start + e.keyLen;
    if (k >= to || b[k] !== 32) return undefined;
    let i = k + 1;
    const stop = Math.min(to, k + 64);
    while (i < stop && b[i] !== 10) i++;
    if (i === stop || !equalBytes(b, start, e.blk, e.keyAt, e.keyLen)) return undefined;
    e.seen = this.#scrape;
    this.#last = e;
    this.tailEnd = i + 1;
    return e;
  }

  /** See predicted(). */
  tailEnd = 0;

  /** The interned context for a family key. */
  context(key: string): FamilyContext {
    let c = this.#contexts.get(key);
    if (c === undefined) {
      if (this.#contexts.size >= CONTEXT_LIMIT) this.clear();
      c = new FamilyContext(key);
      this.#contexts.set(key, c);
    }
    return c;
  }

  /** The entry for key bytes [start, end) of `b`, or undefined. */
  find(b: Uint8Array, start: number, end: number): SeriesEntry | undefined {
    this.#missBlk = undefined;
    const len = end - start;
    const last = this.#last;
    const guess = last?.next;
    if (
      guess?.cached === true &&
      guess.keyLen === len &&
      equalBytes(b, start, guess.blk, guess.keyAt, len)
    ) {
      guess.seen = this.#scrape;
      this.#last = guess;
      return guess;
    }
    const h = hashBytes(b, start, end);
    const slots = this.#slots;
    const mask = slots.length - 1;
    const entries = this.#entries;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === 0) {
        // add() of this very key (a new series) need not hash it again.
        this.#missBlk = b;
        this.#missAt = start;
        this.#missHash = h;
        return undefined;
      }
      const e = entries[s - 1]!;
      if (e.keyHash === h && e.keyLen === len && equalBytes(b, start, e.blk, e.keyAt, len)) {
        e.seen = this.#scrape;
        if (last !== undefined) last.next = e;
        this.#last = e;
        return e;
      }
    }
  }

  /**
   * Room for an entry's key (keyLen bytes) and then up to restMax bytes of
   * output: blocks()/at say where; undefined when the cache is full.
   */
  room(keyLen: number, restMax: number): ByteBlocks | undefined {
    const n = keyLen + restMax;
    const blocks = this.#blocks;
    // A new block counts whole: it is allocated whole.
    const grow = blocks.fits(n) ? 0 : Math.max(BLOCK, n);
    if (this.#entries.length * ENTRY_BYTES + blocks.allocated + grow > this.#maxBytes) {
      return undefined;
    }
    blocks.reserve(n);
    return blocks;
  }

  /** Adds an entry whose key and output were written at the room() just given. */
  add(e: SeriesEntry): void {
    const n = e.keyLen + e.restLen;
    this.#blocks.commit(n);
    this.#bytes += n;
    e.keyHash =
      this.#missBlk === e.blk && this.#missAt === e.keyAt
        ? this.#missHash
        : hashBytes(e.blk, e.keyAt, e.keyAt + e.keyLen);
    this.#missBlk = undefined;
    e.seen = this.#scrape;
    e.cached = true;
    this.#entries.push(e);
    if (this.#entries.length * 2 > this.#slots.length) this.#rehash(this.#slots.length * 2);
    else this.#insert(e, this.#entries.length);
    // An entry for the same key made in another family context (a HELP that
    // changed, say) is replaced: find() would keep returning it.
    if (this.#displaced !== undefined) {
      this.#displaced.cached = false;
      this.#displaced = undefined;
    }
    if (this.#last !== undefined) this.#last.next = e;
    this.#last = e;
  }

  /** The scrape is over: entries unseen in it and the one before are dropped once they are half the cache. */
  endScrape(): void {
    const scrape = this.#scrape++;
    this.#last = undefined;
    const entries = this.#entries;
    let liveCount = 0;
    let liveBytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.seen >= scrape - 1 && e.cached) {
        liveCount++;
        liveBytes += e.keyLen + e.restLen;
      }
    }
    if (liveCount * 2 >= entries.length && this.#blocks.allocated <= 2 * liveBytes + BLOCK) return;
    const live = entries.filter((e) => e.seen >= scrape - 1 && e.cached);
    // Copy what is live into new blocks, so the old ones can go.
    const blocks = new ByteBlocks();
    let bytes = 0;
    for (const e of live) {
      const n = e.keyLen + e.restLen;
      blocks.reserve(n);
      blocks.block.set(e.blk.subarray(e.keyAt, e.keyAt + n), blocks.at);
      blocks.commit(n);
      e.blk = blocks.block;
      e.keyAt = blocks.at;
      e.next = undefined;
      bytes += n;
    }
    for (const e of entries) if (e.seen < scrape - 1) e.cached = false;
    this.#blocks = blocks;
    this.#bytes = bytes;
    this.#entries = live;
    this.#rehash(Math.max(1 << 12, nextPow2(live.length * 2)));
  }

  /** Forgets every entry (a family context limit was reached, or a test asks). */
  clear(): void {
    for (const e of this.#entries) e.cached = false;
    this.#entries = [];
    this.#blocks = new ByteBlocks();
    this.#bytes = 0;
    this.#slots = new Int32Array(1 << 12);
    this.#last = undefined;
    this.#contexts.clear();
  }

  #rehash(n: number): void {
    this.#slots = new Int32Array(n);
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++)
      if (entries[i]!.cached) this.#insert(entries[i]!, i + 1);
  }

  /** Puts entry `ref` (1-based) in its slot: the empty one, or the one of an entry with the same key. */
  #insert(e: SeriesEntry, ref: number): void {
    const slots = this.#slots;
    const mask = slots.length - 1;
    let i = e.keyHash & mask;
    for (;;) {
      const s = slots[i]!;
      if (s === 0) break;
      const o = this.#entries[s - 1]!;
      if (o.cached && o.keyHash === e.keyHash && o.keyLen === e.keyLen) {
        if (equalBytes(e.blk, e.keyAt, o.blk, o.keyAt, e.keyLen)) {
          this.#displaced = o;
          break;
        }
      }
      i = (i + 1) & mask;
    }
    slots[i] = ref;
  }

  /** The entry the last #insert() replaced. */
  #displaced: SeriesEntry | undefined;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Whether a[as, as+len) equals b[bs, bs+len) (memcmp: far cheaper than a loop over bytes). */
export function equalBytes(
  a: Uint8Array,
  as: number,
  b: Uint8Array,
  bs: number,
  len: number,
): boolean {
  return a[as] === b[bs] && compareRange.call(b, a, as, as + len, bs, bs + len) === 0;
}

const compareRange = Buffer.prototype.compare as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  targetEnd: number,
  sourceStart: number,
  sourceEnd: number,
) => number;
