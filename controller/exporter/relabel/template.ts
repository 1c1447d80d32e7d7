// Relabel rules compiled into templates, memoised per label layout.
//
// Without labelmap, a rule chain only ever reads the values of a fixed set of
// label names (its source_labels, and the target of keepequal/dropequal).
// Every other value is carried along untouched or removed, never inspected.
// So for one metric name, one label layout (Shape) and one combination of the
// values that are read, the outcome is always the same "template": drop, or
// this output name and these output labels, each either a constant or "the
// value of input label i". The template is found by running the real rule
// engine (relabel.ts) once on a stand-in series whose unread values are
// placeholders, so templates have Prometheus's semantics by construction.
// A series then costs a memo lookup, and its values are only copied out of
// the payload if a later stage needs them.
import { hashString, type LabelScan } from "../model/label-scan.ts";
import type { Shape } from "../model/shape.ts";
import { Sample } from "../model/model.ts";
import { detach } from "../model/detach.ts";
import { type RelabelOutcome, type RelabelRule, type RelabelStats, relabel } from "./relabel.ts";

export interface RelabelTemplate {
  outcome: RelabelOutcome;
  /** Output metric name. */
  name: string;
  /** Output label names in order. */
  names: readonly string[];
  /** Per output label: the input label index it copies, or -1 for `consts[i]`. */
  sources: readonly number[];
  consts: readonly string[];
  /** Output equals input (nothing to rewrite, the scraped line can be copied). */
  identity: boolean;
  /** Target labels skipped because their expansion was not a valid name. */
  invalidTargets: number;
  /** Set when this series must go through the rule engine itself (see PLACEHOLDER). */
  fallback: boolean;
}

/**
 * Placeholder values stand for unread input values. A real value containing
 * this marker could be mistaken for one, so such series take the plain path.
 */
const PLACEHOLDER = "\u0000\ufdd0coder-metrics-input:";

/** Bound on the label layouts templates are kept for. */
const SHAPE_ENTRIES_LIMIT = 4096;

/** Bound on memoised value combinations per (shape, name). */
const MEMO_LIMIT = 4096;
/**
 * Misses after which an entry whose values rarely repeat (a rule reading a
 * per-workspace label) stops compiling templates: its series go through the
 * rule engine directly, which costs less than compiling one template each.
 */
const DIRECT_AFTER_MISSES = 512;

interface Entry {
  /** Input indexes of the read labels present in the shape. */
  read: number[];
  /** The template when no read label is present. */
  only: RelabelTemplate | undefined;
  memo: Map<string, RelabelTemplate>;
  /** Last values read and their template (consecutive series often share them). */
  lastValues: string[];
  last: RelabelTemplate | undefined;
  hits: number;
  misses: number;
  /** Templates do not pay here (see DIRECT_AFTER_MISSES). */
  direct: boolean;
}

/** "Relabel this series with the rule engine itself." */
const FALLBACK: RelabelTemplate = {
  outcome: "keep",
  name: "",
  names: [],
  sources: [],
  consts: [],
  identity: false,
  invalidTargets: 0,
  fallback: true,
};

export class RelabelTemplates {
  readonly #rules: readonly RelabelRule[];
  /** Label names whose values the rules read (never `__name__`: the name is part of the key). */
  readonly #readNames: readonly string[];
  /** The entry used last (consecutive series share name and layout). */
  /** Per label layout, per metric name: what these rules do to such series. */
  readonly #entries = new Map<Shape, Map<string, Entry>>();
  #lastShape: Shape | undefined;
  #lastName = "";
  #lastEntry: Entry | undefined;

  /** Whether the rules can be compiled (labelmap copies values of labels it picks by name). */
  static supports(rules: readonly RelabelRule[]): boolean {
    return rules.every((r) => r.action !== "labelmap");
  }

  constructor(rules: readonly RelabelRule[]) {
    this.#rules = rules;
    const read = new Set<string>();
    for (const r of rules) {
      for (const l of r.sourceLabels) read.add(l);
      if (r.action === "keepequal" || r.action === "dropequal") read.add(r.targetLabel);
    }
    read.delete("__name__");
    this.#readNames = [...read];
  }

  /** Forgets the last lookup (its name may be cut from a scraped payload). */
  release(): void {
    this.#lastShape = undefined;
    this.#lastName = "";
    this.#lastEntry = undefined;
  }

  /** The template for the sample whose labels `scan` holds, named `name`. */
  lookup(name: string, scan: LabelScan): RelabelTemplate {
    const shape = scan.shape;
    let e: Entry | undefined;
    if (shape === this.#lastShape && name === this.#lastName) {
      e = this.#lastEntry!;
    } else {
      let byName = this.#entries.get(shape);
      if (byName === undefined) {
        // Shapes come and go with the parser's table; keep this bounded alike.
        if (this.#entries.size >= SHAPE_ENTRIES_LIMIT) this.#entries.clear();
        byName = new Map();
        this.#entries.set(shape, byName);
      }
      e = byName.get(name);
      if (e === undefined) {
        e = this.#entry(shape);
        byName.set(detach(name), e);
      }
      this.#lastShape = shape;
      this.#lastName = name;
      this.#lastEntry = e;
    }
    const read = e.read;
    if (read.length === 0) {
      e.only ??= this.#compile(name, shape, read, []);
      return e.only;
    }
    if (e.direct) return FALLBACK;
    const last = e.lastValues;
    if (e.last !== undefined) {
      let same = true;
      for (let i = 0; i < read.length; i++) {
        if (!scan.valueEquals(read[i]!, last[i]!)) {
          same = false;
          break;
        }
      }
      if (same) return e.last;
    }
    let key = "";
    for (let i = 0; i < read.length; i++) {
      const v = scan.value(read[i]!);
      last[i] = v;
      // Length-prefixed, so no value can be mistaken for a separator.
      key = read.length === 1 ? v : `${key}${v.length}:${v}`;
    }
    let t = e.memo.get(key);
    if (t !== undefined) {
      e.hits++;
    } else {
      if (++e.misses >= DIRECT_AFTER_MISSES && e.hits < e.misses) {
        e.direct = true;
        e.memo.clear();
        e.last = undefined;
        return FALLBACK;
      }
      t = this.#compile(name, shape, read, last);
      if (e.memo.size >= MEMO_LIMIT) e.memo.clear();
      e.memo.set(detach(key), t);
    }
    // Keep the one-entry cache from pinning the payload: values are short
    // copies or detached.
    for (let i = 0; i < read.length; i++) last[i] = detach(last[i]!);
    e.last = t;
    return t;
  }

  #entry(shape: Shape): Entry {
    const read: number[] = [];
    for (const n of this.#readNames) {
      const i = shape.indexOf(n);
      if (i >= 0) read.push(i);
    }
    read.sort((a, b) => a - b);
    return {
      read,
      only: undefined,
      memo: new Map(),
      lastValues: [],
      last: undefined,
      hits: 0,
      misses: 0,
      direct: false,
    };
  }

  /** Runs the rules on a stand-in series and reads the template off the result. */
  #compile(name: string, shape: Shape, read: number[], values: string[]): RelabelTemplate {
    const inNames = shape.names;
    const labels: string[] = [];
    const placeholders = new Map<string, number>();
    for (let i = 0; i < inNames.length; i++) {
      const r = read.indexOf(i);
      let v: string;
      if (r >= 0) {
        v = values[r]!;
        if (v.includes(PLACEHOLDER)) return FALLBACK;
      } else {
        v = `${PLACEHOLDER}${i}`;
        placeholders.set(v, i);
      }
      labels.push(inNames[i]!, v);
    }
    const standIn = new Sample(name, labels.slice(), 0);
    const stats: RelabelStats = { invalidTargets: 0 };
    const outcome = relabel(standIn, this.#rules, stats);
    const out = standIn.labels;
    const names: string[] = [];
    const sources: number[] = [];
    const consts: string[] = [];
    let identity = outcome === "keep" && standIn.name === name && out.length === labels.length;
    for (let p = 0; p < out.length; p += 2) {
      const v = out[p + 1]!;
      const from = placeholders.get(v);
      names.push(out[p]!);
      if (from !== undefined) {
        sources.push(from);
        consts.push("");
      } else {
        sources.push(-1);
        consts.push(detach(v));
      }
      const i = p / 2;
      if (
        out[p] !== inNames[i] ||
        (from !== i && !(from === undefined && read.includes(i) && v === labels[p + 1]))
      )
        identity = false;
    }
    return {
      outcome,
      name: detach(standIn.name),
      names,
      sources,
      consts,
      identity,
      invalidTargets: stats.invalidTargets,
      fallback: false,
    };
  }
}

/**
 * Rewrites `s` (whose labels `scan` holds) to the template's output:
 * the label array is built only here, and only when something changed.
 */
export function applyTemplate(s: Sample, t: RelabelTemplate, scan: LabelScan): void {
  if (t.identity) return;
  const l: string[] = [];
  const { names, sources, consts } = t;
  for (let p = 0; p < names.length; p++) {
    const from = sources[p]!;
    l.push(names[p]!, from >= 0 ? scan.value(from) : consts[p]!);
  }
  s.labels = l;
  if (s.name !== t.name) s.name = t.name;
}

/** Mixes output label p's value into a hash. */
export function hashOutput(h: number, t: RelabelTemplate, p: number, scan: LabelScan): number {
  const from = t.sources[p]!;
  return from >= 0 ? scan.hashValue(h, from) : hashString(h, t.consts[p]!);
}

/** Whether output label p's value equals `v`. */
export function outputEquals(t: RelabelTemplate, p: number, scan: LabelScan, v: string): boolean {
  const from = t.sources[p]!;
  return from >= 0 ? scan.valueEquals(from, v) : t.consts[p] === v;
}

/** Output label p's value as a string. */
export function outputValue(t: RelabelTemplate, p: number, scan: LabelScan): string {
  const from = t.sources[p]!;
  return from >= 0 ? scan.value(from) : t.consts[p]!;
}
