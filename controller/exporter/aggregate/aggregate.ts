// Aggregation of one metric family across series, the way PromQL's
// `sum/max/min/count by|without (...)` would compute it at query time, so the
// exporter can serve per-template instead of per-workspace series.
//   - counter, gauge, untyped: one output series per group; count → gauge.
//   - histogram (sum only): `_bucket` summed per `le` (compared numerically),
//     `_sum` and `_count` summed; buckets written in ascending `le` order.
//   - summary (sum only): `_sum` and `_count` summed; quantiles cannot be
//     aggregated and are left out.
// Timestamps are not carried over. Input samples are not modified.
//
// Which value an output series carries, per op and type:
//   - sum of counters, histograms (buckets, `_sum`, `_count`) and summaries
//     (`_sum`, `_count`): a running total that keeps counter semantics across
//     scrapes, as vmagent's `total` output does — an input series that
//     disappears or resets never makes it go down (counter-state.ts). With
//     `counter_mode: stateless`, the sum of this scrape's series instead.
//   - sum of gauges and untyped series, max, min: this scrape's series only.
//   - count: this scrape's series, and always a gauge.
// Output series are those whose group has series in this scrape, as PromQL
// would give them; only their values differ between the two modes.
//
// Series are fed one at a time, either as Samples or as a relabel template
// over scanned label text (relabel/template.ts). Groups are found by a hash of
// the kept label values checked against the group's values, so a series that
// joins an existing group costs no string at all.
import type { AggregateOp, AggregateRule } from "../config/config.ts";
import { COUNT_SLOT, type CounterState, type GroupState, SUM_SLOT } from "./counter-state.ts";
import { HASH_SEED, hashString, type LabelScan } from "../model/label-scan.ts";
import { type Family, Sample } from "../model/model.ts";
import { parseGoFloat } from "../parse/parse.ts";
import { detach } from "../model/detach.ts";
import {
  hashOutput,
  outputEquals,
  outputValue,
  type RelabelTemplate,
} from "../relabel/template.ts";

/** The family fields an aggregation keeps (everything but the samples). */
export type FamilyHead = Omit<Family, "samples">;

/**
 * What the rule keeps of one label-name layout: positions of kept labels in
 * output order and in name order (the group identity), and where `le` is.
 */
interface KeyPlan {
  kept: number[];
  sorted: number[];
  /** Kept names in name order, joined: part of a group's identity. */
  namesKey: string;
  namesHash: number;
  /** Position of the bucket bound (`le`, histograms only), -1 when absent. */
  le: number;
  /** Positions of the labels aggregated away (neither kept nor `le`/`quantile`). */
  dropped: number[];
  /** Hash of their names: the seed of a member hash (counter-state.ts). */
  droppedHash: number;
}

interface Group {
  /** Sample name (counters/gauges: part of the identity; "" otherwise). */
  name: string;
  namesKey: string;
  /** Kept values in name order. */
  values: string[];
  /** Kept label pairs in output order. */
  pairs: string[];
  hash: number;
  next: Group | undefined;
  value: number;
  buckets: Map<number, Bucket> | undefined;
  sum: number;
  count: number;
  hasSum: boolean;
  hasCount: boolean;
  /** The group's running totals, when the aggregation keeps counter state. */
  state: GroupState | undefined;
}

/**
 * Member hashes are cut to 30 bits: small integers (V8 Smis) never boxed on
 * the way to a Map lookup. Collisions in a group cost nothing but order (see
 * counter-state.ts).
 */
const MEMBER_HASH_MASK = 0x3fffffff;

interface Bucket {
  le: string;
  value: number;
  /** Its slot in the group's counter state (-1 without state). */
  slot: number;
}

/** Whether `rule` can aggregate a family of this type. */
export function aggregateSupported(type: Family["type"], rule: AggregateRule): boolean {
  return (type !== "histogram" && type !== "summary") || rule.op === "sum";
}

/** Accumulates the series of one family; result() gives the aggregated family. */
export class Aggregator {
  readonly head: FamilyHead;
  readonly #rule: AggregateRule;
  /** Running totals across scrapes (counter-state.ts), or undefined. */
  readonly #state: CounterState | undefined;
  readonly #kind: "plain" | "histogram" | "summary";
  readonly #extra: string | undefined;
  readonly #bucketName: string;
  readonly #sumName: string;
  readonly #countName: string;
  readonly #groups: Group[] = [];
  readonly #index = new Map<number, Group>();
  /** Plans by label-name layout (samples) or by template (scanned series). */
  readonly #plansByNames = new Map<string, KeyPlan>();
  readonly #plansByTemplate = new Map<RelabelTemplate, KeyPlan>();
  #lastNames: string[] = [];
  #lastPlan: KeyPlan | undefined;
  #lastLe = "";
  #lastBound: number | undefined;
  /** The last template's plan, and the group the last scanned series joined. */
  #lastTemplate: RelabelTemplate | undefined;
  #lastTemplatePlan: KeyPlan | undefined;
  #lastGroup: Group | undefined;
  /** Hash of the last sample name (names repeat from series to series). */
  #lastName = "";
  #lastNameHash = HASH_SEED;
  /** Series fed in. */
  count = 0;
  /** Series left out of the running totals (the series budget was spent). */
  refused = 0;

  /**
   * The rule must support the family's type (aggregateSupported); `state`
   * is given when the aggregation keeps counter state (keepsCounterState).
   */
  constructor(head: FamilyHead, rule: AggregateRule, state?: CounterState) {
    this.head = head;
    this.#rule = rule;
    this.#state = state;
    this.#kind =
      head.type === "histogram" ? "histogram" : head.type === "summary" ? "summary" : "plain";
    this.#extra =
      this.#kind === "histogram" ? "le" : this.#kind === "summary" ? "quantile" : undefined;
    this.#bucketName = `${head.name}_bucket`;
    this.#sumName = `${head.name}_sum`;
    this.#countName = `${head.name}_count`;
  }

  /**
   * Adds an aggregate of some series made by this same rule (from result()):
   * like addSample, except that a `count` adds the partial count.
   */
  addPartial(s: Sample): void {
    this.addSample(s, true);
  }

  /** Adds a series given as a Sample. */
  addSample(s: Sample, partial = false): void {
    this.count++;
    const name = s.name;
    if (this.#kind === "summary" && name !== this.#sumName && name !== this.#countName) return;
    const l = s.labels;
    const plan = this.#planForLabels(l);
    let h = this.#nameHash(name) ^ plan.namesHash;
    for (const i of plan.sorted) h = hashString(h, l[i + 1]!);
    let g = this.#index.get(h);
    for (; g !== undefined; g = g.next) {
      if (!this.#sameHead(g, name, plan)) continue;
      let same = true;
      for (let k = 0; k < plan.sorted.length; k++) {
        if (g.values[k] !== l[plan.sorted[k]! + 1]) {
          same = false;
          break;
        }
      }
      if (same) break;
    }
    if (g === undefined) {
      const values = plan.sorted.map((i) => l[i + 1]!);
      const pairs: string[] = [];
      for (const i of plan.kept) pairs.push(l[i]!, l[i + 1]!);
      g = this.#newGroup(h, name, plan, values, pairs, s.value);
      if (partial && this.#rule.op === "count") g.value = s.value;
    } else if (partial && this.#rule.op === "count") {
      g.value += s.value;
    } else {
      this.#combine(g, name, s.value);
    }
    const slot =
      this.#kind === "histogram"
        ? this.#histogram(g, name, s.value, plan.le < 0 ? "" : l[plan.le + 1]!)
        : this.#slot(name);
    if (g.state !== undefined && !partial) {
      let mh = plan.droppedHash;
      for (const i of plan.dropped) mh = hashString(mh, l[i + 1]!);
      this.#observe(g.state, mh & MEMBER_HASH_MASK, slot, s.value);
    }
  }

  /** Adds a series given as a relabel template over the labels `scan` holds. */
  addScanned(name: string, value: number, t: RelabelTemplate, scan: LabelScan): void {
    this.count++;
    if (this.#kind === "summary" && name !== this.#sumName && name !== this.#countName) return;
    let plan: KeyPlan | undefined;
    if (t === this.#lastTemplate) {
      plan = this.#lastTemplatePlan!;
    } else {
      plan = this.#plansByTemplate.get(t);
      if (plan === undefined) {
        plan = this.#plan(t.names);
        this.#plansByTemplate.set(t, plan);
      }
      this.#lastTemplate = t;
      this.#lastTemplatePlan = plan;
    }
    // The previous series' group first: consecutive series often share one
    // (the buckets, sum and count of one workspace's histogram, say).
    let g: Group | undefined = this.#lastGroup;
    let h = 0;
    if (g === undefined || !this.#sameGroup(g, name, plan, t, scan)) {
      h = this.#nameHash(name) ^ plan.namesHash;
      for (const p of plan.sorted) h = hashOutput(h, t, p, scan);
      for (g = this.#index.get(h); g !== undefined; g = g.next) {
        if (this.#sameGroup(g, name, plan, t, scan)) break;
      }
    }
    if (g === undefined) {
      const values = plan.sorted.map((p) => outputValue(t, p, scan));
      const pairs: string[] = [];
      for (const p of plan.kept) pairs.push(t.names[p]!, outputValue(t, p, scan));
      g = this.#newGroup(h, name, plan, values, pairs, value);
    } else {
      this.#combine(g, name, value);
    }
    this.#lastGroup = g;
    if (this.#kind === "histogram" && name === this.#bucketName) {
      // Bucket bounds repeat from series to series: parse each text once.
      let bound: number | undefined;
      let le = "";
      if (plan.le >= 0) {
        if (outputEquals(t, plan.le, scan, this.#lastLe)) {
          le = this.#lastLe;
          bound = this.#lastBound;
        } else {
          le = outputValue(t, plan.le, scan);
          bound = parseGoFloat(le);
          this.#lastLe = le;
          this.#lastBound = bound;
        }
      }
      const slot = this.#bucket(g, le, bound, value);
      if (g.state !== undefined)
        this.#observe(g.state, this.#memberHash(plan, t, scan), slot, value);
      return;
    }
    const slot =
      this.#kind === "histogram" ? this.#histogram(g, name, value, "") : this.#slot(name);
    if (g.state !== undefined) this.#observe(g.state, this.#memberHash(plan, t, scan), slot, value);
  }

  /** Hash of the labels a scanned series loses to the aggregation (its member in the group). */
  #memberHash(plan: KeyPlan, t: RelabelTemplate, scan: LabelScan): number {
    let h = plan.droppedHash;
    for (const p of plan.dropped) h = hashOutput(h, t, p, scan);
    return h & MEMBER_HASH_MASK;
  }

  /** The counter-state slot of a counter's or summary's sample name (-1: none). */
  #slot(name: string): number {
    if (this.#kind === "plain") return 0;
    return name === this.#sumName ? SUM_SLOT : name === this.#countName ? COUNT_SLOT : -1;
  }

  #observe(g: GroupState, member: number, slot: number, value: number): void {
    if (slot >= 0 && !this.#state!.observe(g, member, slot, value)) this.refused++;
  }

  /**
   * The aggregated family (groups in order of first appearance): running
   * totals when the aggregation keeps counter state, else this scrape's values.
   */
  result(): Family {
    return this.#result(this.#state !== undefined);
  }

  /**
   * This scrape's values only, whatever the mode: an aggregate of the series
   * fed so far that another aggregation by the same rule can take (addPartial).
   */
  partial(): Family {
    return this.#result(false);
  }

  #result(totals: boolean): Family {
    const samples: Sample[] = [];
    const head = this.head;
    if (this.#kind === "plain") {
      for (const g of this.#groups) {
        const v = totals && g.state !== undefined ? g.state.total(0) : g.value;
        samples.push(new Sample(g.name, g.pairs, v));
      }
      const type = this.#rule.op === "count" ? "gauge" : head.type;
      return { ...head, type, typed: head.typed || type !== head.type, samples };
    }
    for (const g of this.#groups) {
      const st = totals ? g.state : undefined;
      if (g.buckets !== undefined) {
        const bounds = [...g.buckets.keys()].sort((a, b) => a - b);
        for (const bound of bounds) {
          const b = g.buckets.get(bound)!;
          const v = st !== undefined ? st.total(b.slot) : b.value;
          samples.push(new Sample(this.#bucketName, [...g.pairs, "le", b.le], v));
        }
      }
      if (g.hasSum) {
        const v = st !== undefined ? st.total(SUM_SLOT) : g.sum;
        samples.push(new Sample(this.#sumName, g.pairs.slice(), v));
      }
      if (g.hasCount) {
        const v = st !== undefined ? st.total(COUNT_SLOT) : g.count;
        samples.push(new Sample(this.#countName, g.pairs.slice(), v));
      }
    }
    return { ...head, samples };
  }

  /** The name's part of a group hash (only counters/gauges group by name). */
  #nameHash(name: string): number {
    if (this.#kind !== "plain") return HASH_SEED;
    if (name !== this.#lastName) {
      this.#lastName = name;
      this.#lastNameHash = hashString(HASH_SEED, name);
    }
    return this.#lastNameHash;
  }

  /** Whether the scanned series (output labels `t` over `scan`) belongs to group g. */
  #sameGroup(g: Group, name: string, plan: KeyPlan, t: RelabelTemplate, scan: LabelScan): boolean {
    if (!this.#sameHead(g, name, plan)) return false;
    const sorted = plan.sorted;
    const values = g.values;
    for (let k = 0; k < sorted.length; k++) {
      if (!outputEquals(t, sorted[k]!, scan, values[k]!)) return false;
    }
    return true;
  }

  #sameHead(g: Group, name: string, plan: KeyPlan): boolean {
    return (this.#kind !== "plain" || g.name === name) && g.namesKey === plan.namesKey;
  }

  #newGroup(
    hash: number,
    name: string,
    plan: KeyPlan,
    values: string[],
    pairs: string[],
    value: number,
  ): Group {
    // Groups outlive the piece of payload their strings were cut from.
    for (let i = 0; i < values.length; i++) values[i] = detach(values[i]!);
    for (let i = 1; i < pairs.length; i += 2) pairs[i] = detach(pairs[i]!);
    const g: Group = {
      name: this.#kind === "plain" ? detach(name) : "",
      namesKey: plan.namesKey,
      values,
      pairs,
      hash,
      next: this.#index.get(hash),
      value: this.#rule.op === "count" ? 1 : value,
      buckets: this.#kind === "histogram" ? new Map() : undefined,
      sum: 0,
      count: 0,
      hasSum: false,
      hasCount: false,
      state: undefined,
    };
    if (this.#state !== undefined) g.state = this.#state.group(hash, g.name, plan.namesKey, values);
    this.#index.set(hash, g);
    this.#groups.push(g);
    if (this.#kind === "summary") this.#summary(g, name, value);
    return g;
  }

  #combine(g: Group, name: string, v: number): void {
    if (this.#kind === "plain") g.value = combine(this.#rule.op, g.value, v);
    else if (this.#kind === "summary") this.#summary(g, name, v);
  }

  #summary(g: Group, name: string, v: number): void {
    if (name === this.#sumName) {
      g.sum += v;
      g.hasSum = true;
    } else if (name === this.#countName) {
      g.count += v;
      g.hasCount = true;
    }
  }

  /** Adds a histogram series; its counter-state slot (-1: none, e.g. a stray series). */
  #histogram(g: Group, name: string, v: number, le: string): number {
    if (name === this.#bucketName) return this.#bucket(g, le, parseGoFloat(le), v);
    if (name === this.#sumName) {
      g.sum += v;
      g.hasSum = true;
      return SUM_SLOT;
    }
    if (name === this.#countName) {
      g.count += v;
      g.hasCount = true;
      return COUNT_SLOT;
    }
    return -1;
  }

  /** Adds to a bucket; its counter-state slot (-1: none). */
  #bucket(g: Group, le: string, bound: number | undefined, v: number): number {
    if (bound === undefined) return -1; // a bucket without a numeric le has no place in a sum
    let b = g.buckets!.get(bound);
    if (b === undefined) {
      b = { le, value: v, slot: g.state === undefined ? -1 : g.state.bucketSlot(bound) };
      g.buckets!.set(bound, b);
    } else {
      b.value += v;
    }
    return b.slot;
  }

  #planForLabels(l: readonly string[]): KeyPlan {
    const names = this.#lastNames;
    if (this.#lastPlan !== undefined && names.length * 2 === l.length) {
      let same = true;
      for (let i = 0; i < names.length; i++) {
        if (names[i] !== l[2 * i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#lastPlan;
    }
    const next: string[] = [];
    for (let i = 0; i < l.length; i += 2) next.push(l[i]!);
    // Length-prefixed: UTF-8 label names may contain ",".
    const key = next.map((n) => `${n.length}:${n}`).join("");
    let plan = this.#plansByNames.get(key);
    if (plan === undefined) {
      plan = this.#plan(next);
      // Sample plans index the flat [name, value, …] array.
      plan = {
        ...plan,
        kept: plan.kept.map((p) => 2 * p),
        sorted: plan.sorted.map((p) => 2 * p),
        le: plan.le < 0 ? -1 : 2 * plan.le,
        dropped: plan.dropped.map((p) => 2 * p),
      };
      this.#plansByNames.set(key, plan);
    }
    this.#lastNames = next;
    this.#lastPlan = plan;
    return plan;
  }

  /** Which of these output label names the rule keeps (positions in `names`). */
  #plan(names: readonly string[]): KeyPlan {
    const rule = this.#rule;
    const kept: number[] = [];
    if (rule.by !== undefined) {
      for (const name of rule.by) {
        if (name === this.#extra) continue;
        const i = names.indexOf(name);
        if (i >= 0) kept.push(i);
      }
    } else {
      const without = rule.without ?? [];
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        if (name !== this.#extra && !without.includes(name)) kept.push(i);
      }
    }
    const sorted = [...kept].sort((a, b) =>
      names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0,
    );
    const namesKey = sorted.map((i) => `${names[i]!.length}:${names[i]}`).join("");
    const dropped: number[] = [];
    for (let i = 0; i < names.length; i++) {
      if (names[i] !== this.#extra && !kept.includes(i)) dropped.push(i);
    }
    return {
      kept,
      sorted,
      namesKey,
      namesHash: hashString(HASH_SEED, namesKey),
      le: this.#kind === "histogram" ? names.lastIndexOf("le") : -1,
      dropped,
      droppedHash: hashString(HASH_SEED, dropped.map((i) => names[i]).join(",")),
    };
  }
}

function combine(op: AggregateOp, acc: number, v: number): number {
  switch (op) {
    case "sum":
      return acc + v;
    case "max":
      return acc < v || Number.isNaN(acc) ? v : acc;
    case "min":
      return acc > v || Number.isNaN(acc) ? v : acc;
    case "count":
      return acc + 1;
  }
}
