// Running totals that keep aggregated counters counters.
//
// A per-scrape `sum` of counters goes down whenever one of its input series
// disappears (a workspace stops) or resets (an agent restarts), and
// Prometheus reads every such drop as a counter reset: rate() and increase()
// then jump by the whole remaining total. So, as vmagent's stream aggregation
// `total` output does, the exporter remembers per input series the last value
// it saw, and each scrape adds the series' increase to its group's running
// total:
//   - value ≥ last: the difference;
//   - value < last: the input reset (it counts from 0 again), so its whole
//     value is new;
//   - a series first seen: its whole value. A new input series (a workspace
//     that just started) counted from 0 since it was born, after the previous
//     scrape, so all of that is increase. At exporter start every series is
//     new, so the totals start at the current per-scrape sum; an output series
//     Prometheus has not seen before starts wherever it starts (Prometheus's
//     increase() never counts a series' first sample, for raw series either).
//     vmagent's `total` does the same after its first staleness interval
//     (`total_prometheus` would count none of it, missing e.g. every startup
//     script a new workspace runs before its first scrape).
// A series that disappears stops adding, but what it added stays in the total,
// so the output only grows while the exporter runs: an exporter restart is
// the only reset Prometheus sees. A value that is not a finite number is
// skipped (the last value stays); an increase is never negative.
//
// Identity: a member is one input series set of a group — one workspace's
// counter, or one workspace's whole histogram/summary (its buckets, `_sum` and
// `_count` are slots of the member). It is found by a hash of the labels the
// rule aggregates away (names and values), which the group does not know; so
// a series costs one hash over those values and no string. Two series that
// hash alike in one group (or are true duplicates after relabeling) are told
// apart by their order within a scrape: a member's slot is claimed once per
// scrape, a second series with the same hash takes the next member of the chain.
// Resets are per series, as Prometheus's own rate() sees them: a histogram
// bucket that went down adds its whole value, its neighbours their differences.
// Memory: typed-array rows per group, about 30 bytes per input series.
//
// Expiry: state of a member unseen for counter_state_ttl (and at least
// MIN_UNSEEN_SCRAPES successful scrapes) is dropped; a group goes with its last
// member. The number of (member, slot) pairs kept is bounded by series_limit:
// past it, new input series are left out of the totals (and counted as
// dropped for `limit`). The state belongs to the Pipeline; see
// Pipeline.adoptCounterState for configuration reloads.
import type { AggregateRule } from "../config/config.ts";
import type { MetricType } from "../model/model.ts";

/** Successful scrapes a member must miss, besides the TTL, before it is forgotten. */
const MIN_UNSEEN_SCRAPES = 3;
/** Sweeps for expired state run at most this often (and at most every TTL/4). */
const SWEEP_EVERY_MS = 60_000;

/** Histogram and summary slots; buckets take the slots after these. */
export const SUM_SLOT = 0;
export const COUNT_SLOT = 1;

/** "No row" in the member chains. */
const NONE = -1;

/**
 * The running totals of one output group, and its members' last values.
 * Members are rows of typed arrays (a few flat objects per group, whatever
 * the number of members, so the garbage collector hardly sees them): row r
 * holds, per slot, the last value and the scrape it was seen in (0 = never).
 */
export class GroupState {
  /** Identity, as the Aggregator's group has it (see aggregate.ts). */
  readonly name: string;
  readonly namesKey: string;
  readonly values: readonly string[];
  readonly hash: number;
  next: GroupState | undefined;
  /** Running total per slot. */
  readonly totals: number[] = [];
  /** Slot per bucket bound (histograms). */
  readonly buckets = new Map<number, number>();
  /** The scrape this group was last seen in. */
  epoch: number;
  /** First row per member hash; rows with the same hash are chained by `#next`. */
  readonly #rows = new Map<number, number>();
  /** Slots per row. */
  #stride = 1;
  #capacity = 0;
  /** Rows handed out (free ones included). */
  #used = 0;
  readonly #free: number[] = [];
  #next = new Int32Array(0);
  /** Per row: the scrape the member was last seen in. */
  #seen = new Int32Array(0);
  /** Per row × slot: last value, and the scrape it was seen in (0: never). */
  #last = new Float64Array(0);
  #at = new Int32Array(0);
  /** The member of the previous series (a histogram's series come one after another). */
  #lastHash = 0;
  #lastRow = NONE;

  constructor(
    name: string,
    namesKey: string,
    values: readonly string[],
    hash: number,
    next: GroupState | undefined,
    epoch: number,
  ) {
    this.name = name;
    this.namesKey = namesKey;
    this.values = values;
    this.hash = hash;
    this.next = next;
    this.epoch = epoch;
  }

  /** The slot of a histogram bucket bound. */
  bucketSlot(bound: number): number {
    let slot = this.buckets.get(bound);
    if (slot === undefined) {
      slot = 2 + this.buckets.size;
      this.buckets.set(bound, slot);
    }
    return slot;
  }

  /** The running total of a slot (0 when nothing was added to it). */
  total(slot: number): number {
    return this.totals[slot] ?? 0;
  }

  /** See CounterState.observe. */
  observe(owner: CounterStates, hash: number, slot: number, value: number): boolean {
    const epoch = owner.epoch;
    if (slot >= this.#stride) this.#layout(slot + 1, this.#capacity);
    const stride = this.#stride;
    // The first member with this hash whose slot this scrape has not claimed;
    // or the previous series' member, met earlier in this scrape (the same
    // decision every scrape, as series come in the same order).
    let prev = NONE;
    let r = this.#lastRow;
    if (
      r === NONE ||
      hash !== this.#lastHash ||
      this.#seen[r] !== epoch ||
      this.#at[r * stride + slot] === epoch
    ) {
      r = this.#rows.get(hash) ?? NONE;
      while (r !== NONE && this.#at[r * stride + slot] === epoch) {
        prev = r;
        r = this.#next[r]!;
      }
    }
    const known = r !== NONE && this.#at[r * stride + slot] !== 0;
    if (!known) {
      if (owner.limit > 0 && owner.series >= owner.limit) return false;
      owner.series++;
      if (r === NONE) {
        r = this.#row();
        if (prev === NONE) this.#rows.set(hash, r);
        else this.#next[prev] = r;
      }
    }
    this.#lastHash = hash;
    this.#lastRow = r;
    const i = r * stride + slot;
    this.#seen[r] = epoch;
    this.#at[i] = epoch;
    this.epoch = epoch;
    if (!Number.isFinite(value)) return true;
    const last = this.#last[i]!;
    const increase = !known ? value : value >= last ? value - last : value;
    this.#last[i] = value;
    if (increase > 0) {
      const totals = this.totals;
      while (totals.length <= slot) totals.push(0);
      totals[slot]! += increase;
    }
    return true;
  }

  /** Frees the rows of members last seen at or before `cutoff`; returns the slots freed. */
  sweep(cutoff: number): number {
    let freed = 0;
    this.#lastRow = NONE;
    const next = this.#next;
    for (const [hash, head] of this.#rows) {
      let first = NONE;
      let tail = NONE;
      for (let r = head; r !== NONE; ) {
        const after = next[r]!;
        if (this.#seen[r]! <= cutoff) {
          freed += this.#release(r);
        } else {
          next[r] = NONE;
          if (tail === NONE) first = r;
          else next[tail] = r;
          tail = r;
        }
        r = after;
      }
      if (first === NONE) this.#rows.delete(hash);
      else if (first !== head) this.#rows.set(hash, first);
    }
    return freed;
  }

  /** (member, slot) pairs held. */
  series(): number {
    let n = 0;
    for (const head of this.#rows.values()) {
      for (let r = head; r !== NONE; r = this.#next[r]!) n += this.#slots(r);
    }
    return n;
  }

  /** A fresh row (all slots never seen). */
  #row(): number {
    const r = this.#free.pop();
    if (r !== undefined) return r;
    if (this.#used === this.#capacity) this.#layout(this.#stride, Math.max(4, this.#capacity * 2));
    this.#next[this.#used] = NONE;
    return this.#used++;
  }

  /** Frees a row; returns the slots it held. */
  #release(r: number): number {
    const n = this.#slots(r);
    const stride = this.#stride;
    this.#at.fill(0, r * stride, (r + 1) * stride);
    this.#last.fill(0, r * stride, (r + 1) * stride);
    this.#next[r] = NONE;
    this.#free.push(r);
    return n;
  }

  #slots(r: number): number {
    let n = 0;
    const stride = this.#stride;
    for (let i = r * stride; i < (r + 1) * stride; i++) if (this.#at[i] !== 0) n++;
    return n;
  }

  /** Re-lays the rows out with more slots per row and/or more rows. */
  #layout(stride: number, capacity: number): void {
    const last = new Float64Array(stride * capacity);
    const at = new Int32Array(stride * capacity);
    const old = this.#stride;
    if (stride === old) {
      last.set(this.#last);
      at.set(this.#at);
    } else {
      for (let r = 0; r < this.#used; r++) {
        last.set(this.#last.subarray(r * old, (r + 1) * old), r * stride);
        at.set(this.#at.subarray(r * old, (r + 1) * old), r * stride);
      }
    }
    if (capacity !== this.#capacity) {
      const next = new Int32Array(capacity);
      next.set(this.#next);
      const seen = new Int32Array(capacity);
      seen.set(this.#seen);
      this.#next = next;
      this.#seen = seen;
    }
    this.#last = last;
    this.#at = at;
    this.#stride = stride;
    this.#capacity = capacity;
  }
}

/** The counter state of one output family under one rule. */
export class CounterState {
  /** The pipeline's states this belongs to (changes when adopted). */
  owner: CounterStates;
  readonly key: string;
  readonly ruleKey: string;
  readonly #index = new Map<number, GroupState>();

  constructor(owner: CounterStates, key: string, ruleKey: string) {
    this.owner = owner;
    this.key = key;
    this.ruleKey = ruleKey;
  }

  get empty(): boolean {
    return this.#index.size === 0;
  }

  /** The state of the group with this identity, made when new. */
  group(hash: number, name: string, namesKey: string, values: readonly string[]): GroupState {
    const epoch = this.owner.epoch;
    const head = this.#index.get(hash);
    for (let g = head; g !== undefined; g = g.next) {
      if (g.name !== name || g.namesKey !== namesKey) continue;
      let same = true;
      for (let k = 0; k < values.length; k++) {
        if (g.values[k] !== values[k]) {
          same = false;
          break;
        }
      }
      if (same) {
        g.epoch = epoch;
        return g;
      }
    }
    const g = new GroupState(name, namesKey, values, hash, head, epoch);
    this.#index.set(hash, g);
    return g;
  }

  /**
   * One input series' value: adds its increase to the group's slot total.
   * `hash` identifies the member (the labels aggregated away; a small
   * integer). False when the series is new and the series budget is spent
   * (it is left out).
   */
  observe(g: GroupState, hash: number, slot: number, value: number): boolean {
    return g.observe(this.owner, hash, slot, value);
  }

  /** Drops members and groups last seen at or before `cutoff`; returns the slots freed. */
  sweep(cutoff: number): number {
    let freed = 0;
    for (const [hash, head] of this.#index) {
      let keep: GroupState | undefined;
      for (let g: GroupState | undefined = head; g !== undefined; ) {
        const next: GroupState | undefined = g.next;
        if (g.epoch <= cutoff) {
          freed += g.series();
        } else {
          freed += g.sweep(cutoff);
          g.next = keep;
          keep = g;
        }
        g = next;
      }
      if (keep === undefined) this.#index.delete(hash);
      else this.#index.set(hash, keep);
    }
    return freed;
  }

  /** (member, slot) pairs held (for adopting state). */
  countSeries(): number {
    let n = 0;
    for (const head of this.#index.values()) {
      for (let g: GroupState | undefined = head; g !== undefined; g = g.next) n += g.series();
    }
    return n;
  }
}

/** Whether a `rule` aggregating a family of this type keeps counter state. */
export function keepsCounterState(type: MetricType, rule: AggregateRule): boolean {
  return (
    rule.op === "sum" &&
    rule.counterMode === "stateful" &&
    (type === "counter" || type === "histogram" || type === "summary")
  );
}

export interface CounterStatesOptions {
  /** State of series unseen this long (and MIN_UNSEEN_SCRAPES scrapes) is dropped. */
  ttlMs: number;
  /** Bound on (member, slot) pairs; 0 = none. */
  limit: number;
  /** Milliseconds, monotonic. */
  clock: () => number;
}

/**
 * All counter state of a pipeline: one CounterState per (rule, family, type),
 * the scrape count that dates members, and the history of successful scrapes
 * that decides expiry. One scrape at a time (the server runs single flight).
 */
export class CounterStates {
  readonly #stores = new Map<string, CounterState>();
  readonly #o: CounterStatesOptions;
  /** Successful scrapes (epoch, time), oldest first, back to the last expiry cutoff. */
  #history: { epoch: number; time: number }[] = [];
  #lastSweep = Number.NEGATIVE_INFINITY;
  /** The current scrape (incremented by begin()). */
  epoch = 0;
  /** (member, slot) pairs held across all stores. */
  series = 0;

  constructor(options: CounterStatesOptions) {
    this.#o = options;
  }

  get limit(): number {
    return this.#o.limit;
  }

  /** Starts a scrape. */
  begin(): void {
    this.epoch++;
  }

  /** The state of `family` (of this type) under `rule`, made when new. */
  store(rule: AggregateRule, family: string, type: MetricType): CounterState {
    const key = `${rule.key}\u0000${type}\u0000${family}`;
    let s = this.#stores.get(key);
    if (s === undefined) {
      s = new CounterState(this, key, rule.key);
      this.#stores.set(key, s);
    }
    return s;
  }

  /** A scrape finished successfully: forgets what has not been seen for long enough. */
  finish(): void {
    const now = this.#o.clock();
    const ttl = this.#o.ttlMs;
    const history = this.#history;
    history.push({ epoch: this.epoch, time: now });
    if (now - this.#lastSweep < Math.min(SWEEP_EVERY_MS, ttl / 4)) return;
    // The newest successful scrape at least ttl ago with enough scrapes after it:
    // whatever was last seen at or before it is gone.
    let cut = -1;
    const last = history.length - 1 - MIN_UNSEEN_SCRAPES;
    while (cut < last && now - history[cut + 1]!.time >= ttl) cut++;
    if (cut < 0) return;
    const cutoff = history[cut]!.epoch;
    history.splice(0, cut + 1);
    this.#lastSweep = now;
    for (const [key, s] of this.#stores) {
      this.series -= s.sweep(cutoff);
      if (s.empty) this.#stores.delete(key);
    }
  }

  /**
   * Takes over another pipeline's state for the rules both have (same rule
   * key), when both relabel alike (`sameInput`): series are then identified
   * the same way, so totals carry on instead of starting over. The other
   * pipeline keeps nothing.
   */
  adopt(from: CounterStates, ruleKeys: ReadonlySet<string>, sameInput: boolean): void {
    const stores = [...from.#stores.values()];
    from.#stores.clear();
    from.series = 0;
    if (!sameInput) return;
    this.epoch = Math.max(this.epoch, from.epoch);
    this.#history = from.#history;
    this.#lastSweep = from.#lastSweep;
    for (const s of stores) {
      if (!ruleKeys.has(s.ruleKey)) continue;
      s.owner = this;
      this.#stores.set(s.key, s);
      this.series += s.countSeries();
    }
  }
}
