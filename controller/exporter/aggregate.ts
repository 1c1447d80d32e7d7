// Aggregation of one metric family across series, the way PromQL's
// `sum/max/min/count by|without (...)` would compute it at query time, so the
// exporter can serve per-template instead of per-workspace series.
//   - counter, gauge, untyped: one output series per group; count → gauge.
//   - histogram (sum only): `_bucket` summed per `le` (compared numerically),
//     `_sum` and `_count` summed; buckets written in ascending `le` order.
//   - summary (sum only): `_sum` and `_count` summed; quantiles cannot be
//     aggregated and are left out.
// Timestamps are not carried over. Input samples are not modified.
import type { AggregateOp, AggregateRule } from "./config.ts";
import { type Family, Sample } from "./model.ts";
import { parseGoFloat } from "./parse.ts";

const SEP = "\xff";

/** Result of aggregating one family; `family` is undefined when the op does not apply to its type. */
export interface AggregateResult {
  family: Family | undefined;
  unsupported: boolean;
}

/**
 * What a rule keeps of one label-name layout ("shape"): indexes of kept values
 * in the flat label array, in output order and in name order (for the key).
 * Samples of a family nearly always share one layout, so the shape of the
 * previous sample is reused and each sample costs one key concatenation.
 */
interface Shape {
  names: string[];
  kept: number[];
  sorted: number[];
  namesKey: string;
}

class Shapes {
  readonly #rule: AggregateRule;
  readonly #extra: string | undefined;
  /** Recently seen shapes, most recent first (histograms alternate bucket/sum/count). */
  readonly #recent: Shape[] = [];
  #cur: Shape = { names: [], kept: [], sorted: [], namesKey: "" };

  constructor(rule: AggregateRule, extra: string | undefined) {
    this.#rule = rule;
    this.#extra = extra;
  }

  static #same(n: string[], l: string[]): boolean {
    if (n.length * 2 !== l.length) return false;
    for (let i = 0; i < n.length; i++) if (n[i] !== l[2 * i]) return false;
    return true;
  }

  #find(l: string[]): Shape {
    if (Shapes.#same(this.#cur.names, l)) return this.#cur;
    for (const sh of this.#recent) if (Shapes.#same(sh.names, l)) return sh;
    const sh = this.#learn(l);
    this.#recent.unshift(sh);
    if (this.#recent.length > 4) this.#recent.pop();
    return sh;
  }

  #learn(l: string[]): Shape {
    const names: string[] = [];
    for (let i = 0; i < l.length; i += 2) names.push(l[i]!);
    const kept: number[] = [];
    const rule = this.#rule;
    if (rule.by !== undefined) {
      for (const name of rule.by) {
        if (name === this.#extra) continue;
        const i = names.indexOf(name);
        if (i >= 0) kept.push(2 * i);
      }
    } else {
      const without = rule.without ?? [];
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        if (name !== this.#extra && !without.includes(name)) kept.push(2 * i);
      }
    }
    const sorted = [...kept].sort((a, b) => (l[a]! < l[b]! ? -1 : l[a]! > l[b]! ? 1 : 0));
    return { names, kept, sorted, namesKey: sorted.map((i) => l[i]).join(SEP) };
  }

  /** The group key of a sample's labels. */
  key(l: string[]): string {
    const sh = this.#find(l);
    this.#cur = sh;
    let k = sh.namesKey;
    for (const i of sh.sorted) k += SEP + l[i + 1]!;
    return k;
  }

  /** The kept label pairs of the sample last passed to key(). */
  pairs(l: string[]): string[] {
    const out: string[] = [];
    for (const i of this.#cur.kept) out.push(l[i]!, l[i + 1]!);
    return out;
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

export function aggregateFamily(f: Family, rule: AggregateRule): AggregateResult {
  if (f.type === "histogram" || f.type === "summary") {
    if (rule.op !== "sum") return { family: undefined, unsupported: true };
    return {
      family: f.type === "histogram" ? sumHistogram(f, rule) : sumSummary(f, rule),
      unsupported: false,
    };
  }
  const groups = new Map<string, Sample>();
  const shapes = new Shapes(rule, undefined);
  for (const s of f.samples) {
    const l = s.labels;
    const key = `${s.name}${SEP}${shapes.key(l)}`;
    const g = groups.get(key);
    if (g === undefined) {
      groups.set(key, new Sample(s.name, shapes.pairs(l), rule.op === "count" ? 1 : s.value));
    } else {
      g.value = combine(rule.op, g.value, s.value);
    }
  }
  const type = rule.op === "count" ? "gauge" : f.type;
  return {
    family: { ...f, type, typed: f.typed || type !== f.type, samples: [...groups.values()] },
    unsupported: false,
  };
}

interface HistogramGroup {
  labels: string[];
  buckets: Map<number, { le: string; value: number }>;
  sum: number;
  count: number;
  hasSum: boolean;
  hasCount: boolean;
}

function sumHistogram(f: Family, rule: AggregateRule): Family {
  const groups = new Map<string, HistogramGroup>();
  const bucketName = `${f.name}_bucket`;
  const sumName = `${f.name}_sum`;
  const countName = `${f.name}_count`;
  const shapes = new Shapes(rule, "le");
  for (const s of f.samples) {
    const l = s.labels;
    const key = shapes.key(l);
    let g = groups.get(key);
    if (g === undefined) {
      g = {
        labels: shapes.pairs(l),
        buckets: new Map(),
        sum: 0,
        count: 0,
        hasSum: false,
        hasCount: false,
      };
      groups.set(key, g);
    }
    if (s.name === bucketName) {
      let le = "";
      for (let i = l.length - 2; i >= 0; i -= 2) {
        if (l[i] === "le") {
          le = l[i + 1]!;
          break;
        }
      }
      const bound = parseGoFloat(le);
      if (bound === undefined) continue; // a bucket without a numeric le has no place in a sum
      const b = g.buckets.get(bound);
      if (b === undefined) g.buckets.set(bound, { le, value: s.value });
      else b.value += s.value;
    } else if (s.name === sumName) {
      g.sum += s.value;
      g.hasSum = true;
    } else if (s.name === countName) {
      g.count += s.value;
      g.hasCount = true;
    }
  }
  const samples: Sample[] = [];
  for (const g of groups.values()) {
    const bounds = [...g.buckets.keys()].sort((a, b) => a - b);
    for (const bound of bounds) {
      const b = g.buckets.get(bound)!;
      samples.push(computed(bucketName, [...g.labels, "le", b.le], b.value));
    }
    if (g.hasSum) samples.push(computed(sumName, g.labels, g.sum));
    if (g.hasCount) samples.push(computed(countName, g.labels, g.count));
  }
  return { ...f, samples };
}

function sumSummary(f: Family, rule: AggregateRule): Family {
  const sumName = `${f.name}_sum`;
  const countName = `${f.name}_count`;
  const groups = new Map<string, { labels: string[]; sum?: number; count?: number }>();
  const shapes = new Shapes(rule, "quantile");
  for (const s of f.samples) {
    if (s.name !== sumName && s.name !== countName) continue;
    const l = s.labels;
    const key = shapes.key(l);
    let g = groups.get(key);
    if (g === undefined) {
      g = { labels: shapes.pairs(l) };
      groups.set(key, g);
    }
    if (s.name === sumName) g.sum = (g.sum ?? 0) + s.value;
    else g.count = (g.count ?? 0) + s.value;
  }
  const samples: Sample[] = [];
  for (const g of groups.values()) {
    if (g.sum !== undefined) samples.push(computed(sumName, g.labels, g.sum));
    if (g.count !== undefined) samples.push(computed(countName, g.labels, g.count));
  }
  return { ...f, samples };
}

function computed(name: string, labels: string[], value: number): Sample {
  // Each sample owns its label array: later stages rewrite labels in place.
  return new Sample(name, labels.slice(), value);
}
