// The transformation pipeline over one scrape:
//   drop_metrics → metric_relabel_configs → aggregate → pii → dedup → series_limit
// where metric_relabel_configs and dedup are what Prometheus 3's scrape loop
// does (empty label values removed, a series left invalid fails the scrape,
// the first sample of a label set wins), so the exporter serves the samples
// Prometheus would store.
// Each stage is its own module; this file only sequences them, routes each
// series to the family it ends in (renamed series regroup), and counts what
// happened for self-metrics. Series come one at a time from the parser — fed
// the payload piece by piece by stream(), or whole by transform()/run() — and
// a family that is aggregated takes them as they come, never holding them.
// Aggregated counters keep running totals across scrapes (counter-state.ts):
// that state lives here, in the Pipeline, for as long as the configuration.
import { Aggregator, aggregateSupported, type FamilyHead } from "./aggregate/aggregate.ts";
import { type CounterState, CounterStates, keepsCounterState } from "./aggregate/counter-state.ts";
import { type AggregateRule, aggregateRuleFor, type ExporterConfig } from "./config/config.ts";
import { LabelScan } from "./model/label-scan.ts";
import { SeriesIdentity } from "./model/identity.ts";
import {
  EMPTY_LABEL_NAME,
  EMPTY_LABEL_VALUE,
  type Family,
  InvalidSeriesError,
  type Sample,
} from "./model/model.ts";
import {
  decodeExposition,
  ExpositionStream,
  type FamilyVisitor,
  type ParseOptions,
  parseVisit,
} from "./parse/parse.ts";
import { ExpositionWriter } from "./serialize/serialize.ts";
import { PiiScrubber } from "./pii/pii.ts";
import { detach } from "./model/detach.ts";
import {
  dropEmptyLabels,
  type RelabelOutcome,
  type RelabelRule,
  type RelabelStats,
  relabel,
  seriesOutcome,
} from "./relabel/relabel.ts";
import { applyTemplate, type RelabelTemplate, RelabelTemplates } from "./relabel/template.ts";

export interface TransformStats {
  seriesIn: number;
  seriesOut: number;
  /** Series removed, by reason (drop_metrics, relabel, aggregated, duplicate, limit). */
  dropped: Record<DropReason, number>;
  /** Rule problems met while applying a valid config, by reason. */
  ruleErrors: Record<RuleErrorReason, number>;
  /** Input series whose last value the running totals of aggregated counters keep. */
  counterStateSeries: number;
}
export type DropReason = "drop_metrics" | "relabel" | "aggregated" | "duplicate" | "limit";
export type RuleErrorReason = "invalid_target_label" | "aggregate_unsupported_type";

export function emptyStats(): TransformStats {
  return {
    seriesIn: 0,
    seriesOut: 0,
    dropped: { drop_metrics: 0, relabel: 0, aggregated: 0, duplicate: 0, limit: 0 },
    ruleErrors: { invalid_target_label: 0, aggregate_unsupported_type: 0 },
    counterStateSeries: 0,
  };
}

export interface PipelineOptions {
  /**
   * Apply relabel rules through memoised templates (relabel/template.ts)
   * rather than rule by rule on every series. Same output; off only to
   * compare the two in tests.
   */
  templates?: boolean;
  /** Milliseconds on a monotonic clock, for counter state expiry (default performance.now). */
  clock?: () => number;
}

/** What a transformation serves. */
export interface TransformResult {
  /** The exposition, names that are not legacy-valid quoted (escaping=allow-utf-8). */
  body: Buffer;
  stats: TransformStats;
  /** Whether `body` has such names: a scraper that did not ask for them needs them escaped. */
  utf8Names: boolean;
}

/** A transformation in progress, fed piece by piece (Pipeline.stream). */
export interface PipelineStream {
  write(chunk: Uint8Array): void;
  end(): TransformResult;
  /** Gives up (the upstream failed): releases what the run holds. */
  abort(): void;
}

/**
 * A configured pipeline; keeps caches (hashes, relabel templates) and the
 * running totals of aggregated counters across scrapes. Runs one scrape at a time.
 */
export class Pipeline {
  readonly config: ExporterConfig;
  readonly #pii: PiiScrubber;
  readonly counters: CounterStates;
  /** Leading keep/drop rules on `__name__` alone, and the rules after them. */
  readonly lead: readonly RelabelRule[];
  readonly rest: readonly RelabelRule[];
  readonly templates: RelabelTemplates | undefined;
  readonly scan = new LabelScan();
  /** Verdicts of the leading name rules per metric name. */
  readonly byName = new Map<string, boolean>();
  /** Bytes of the last streamed output (sizes the next one's buffer). */
  #lastOutput = 0;

  constructor(config: ExporterConfig, hashKey?: Uint8Array, options: PipelineOptions = {}) {
    this.config = config;
    this.#pii = new PiiScrubber(config.pii, hashKey);
    const rules = config.relabel;
    // Leading keep/drop rules on __name__ alone decide per metric name: they
    // are answered once per name, before labels are even looked at.
    let lead = 0;
    while (lead < rules.length && isNameFilter(rules[lead]!)) lead++;
    this.lead = rules.slice(0, lead);
    this.rest = rules.slice(lead);
    this.templates =
      options.templates !== false && RelabelTemplates.supports(this.rest)
        ? new RelabelTemplates(this.rest)
        : undefined;
    this.counters = new CounterStates({
      ttlMs: config.counterStateTtlMs,
      limit: config.seriesLimit,
      clock: options.clock ?? (() => performance.now()),
    });
  }

  /**
   * Takes over the running totals of the pipeline this one replaces (a
   * configuration reload), for the aggregate rules both have, when both
   * relabel alike: series are then identified the same way, so aggregated
   * counters carry on instead of restarting (which Prometheus would see as a
   * reset). Otherwise they start afresh, as at exporter start.
   */
  adoptCounterState(previous: Pipeline): void {
    this.counters.adopt(
      previous.counters,
      new Set(this.config.aggregate.map((r) => r.key)),
      previous.config.relabelKey === this.config.relabelKey,
    );
  }

  /** True when hash_labels are configured but no key was given (they are dropped). */
  get missingHashKey(): boolean {
    return this.#pii.missingKey;
  }

  /** Runs the pipeline over parsed families; consumes (mutates) `input`. */
  run(input: Family[]): { families: Family[]; stats: TransformStats } {
    const families: Family[] = [];
    const run = new Run(this, this.#pii, (f) => families.push(f));
    try {
      for (const f of input) run.push(f);
      run.finish();
    } finally {
      this.#release();
    }
    return { families, stats: run.stats };
  }

  /**
   * Parses, transforms and serializes a payload family by family, so only one
   * family's samples are alive at a time (memory stays near the payload size
   * and short-lived objects die young). Throws ParseError for malformed input.
   */
  transform(input: string | Uint8Array, options: ParseOptions = {}): TransformResult {
    const { writer, run, text } = this.#start(input);
    try {
      parseVisit(text, { ...options, shapes: this.scan.shapes }, run);
      run.finish();
    } finally {
      this.#release();
    }
    return { body: writer.finish(), stats: run.stats, utf8Names: writer.utf8Names };
  }

  /**
   * A transformation fed the payload in pieces as it arrives (see
   * ExpositionStream): memory holds one piece and the family being worked on,
   * never the whole payload. write() and end() throw ParseError for malformed
   * input; abort() (or end()) must be called either way.
   */
  stream(options: ParseOptions = {}): PipelineStream {
    // Sized like the last output: growing a buffer step by step to a large
    // output copies it many times over and leaves each step as garbage.
    const last = this.#lastOutput;
    const writer = new ExpositionWriter(
      undefined,
      Math.max(1 << 20, last + (last >> 3)),
      "allow-utf-8",
      last > 0 ? last + (last >> 5) + 4096 : undefined,
    );
    const run = new Run(this, this.#pii, (f) => writer.writeFamily(f));
    const parser = new ExpositionStream({ ...options, shapes: this.scan.shapes }, run);
    let open = true;
    const close = () => {
      if (open) this.#release();
      open = false;
    };
    return {
      write: (chunk) => {
        try {
          parser.writeBytes(chunk);
        } catch (err) {
          close();
          throw err;
        }
      },
      end: () => {
        try {
          parser.end();
          run.finish();
        } finally {
          close();
        }
        const body = writer.finish();
        this.#lastOutput = body.length;
        return { body, stats: run.stats, utf8Names: writer.utf8Names };
      },
      abort: close,
    };
  }

  #start(input: string | Uint8Array) {
    const text = typeof input === "string" ? input : decodeExposition(input);
    const bytes = typeof input === "string" ? undefined : input;
    const writer = new ExpositionWriter({ text, bytes }, bytes?.length ?? text.length);
    const run = new Run(this, this.#pii, (f) => writer.writeFamily(f));
    return { writer, run, text };
  }

  /** Drops per-scrape references (caches must not pin a scraped payload). */
  #release(): void {
    this.scan.release();
    this.templates?.release();
    for (const r of this.config.relabel) {
      r.regex.releaseInputs();
      r.scratch.parts.length = 0;
      r.scratch.joined = "";
    }
  }
}

/**
 * Where the series of one output family go: kept as samples, or fed to an
 * aggregator as they come (so aggregated series are never built in full).
 */
class Sink {
  readonly head: FamilyHead;
  readonly samples: Sample[] = [];
  readonly agg: Aggregator | undefined;
  /** An aggregation rule matched, but its op does not apply to this type. */
  readonly unsupported: boolean;

  constructor(head: FamilyHead, rule: AggregateRule | undefined, counters?: CounterStates) {
    this.head = head;
    const ok = rule !== undefined && aggregateSupported(head.type, rule);
    let state: CounterState | undefined;
    if (ok && counters !== undefined && keepsCounterState(head.type, rule)) {
      state = counters.store(rule, head.name, head.type);
    }
    this.agg = ok ? new Aggregator(head, rule, state) : undefined;
    this.unsupported = rule !== undefined && !ok;
  }

  get count(): number {
    return this.agg !== undefined ? this.agg.count : this.samples.length;
  }
}

/**
 * One pass of the pipeline over a stream of series (a FamilyVisitor: series
 * arrive one by one as they are parsed, so those that are aggregated die young).
 */
class Run implements FamilyVisitor {
  readonly stats = emptyStats();
  readonly #cfg: ExporterConfig;
  readonly #pii: PiiScrubber;
  readonly #emit: (f: Family) => void;
  readonly #p: Pipeline;
  readonly #rs: RelabelStats = { invalidTargets: 0 };
  /** The series served so far, by label set (see #finish). */
  readonly #ident = new SeriesIdentity();
  /** Families that renamed series moved into; written at the end. */
  readonly #pending = new Map<string, Sink>();
  /** Series budget left under series_limit. */
  #left: number;

  // The family in progress.
  #head: FamilyHead | undefined;
  #same: Sink | undefined;
  #dropped = false;
  #count = 0;
  /**
   * Partial aggregates of this family's own series, set when one of its
   * series was renamed into the family's own name (see #route).
   */
  #early: Sample[] | undefined;
  #lastName = "";
  #lastKeep = true;

  constructor(p: Pipeline, pii: PiiScrubber, emit: (f: Family) => void) {
    this.#p = p;
    this.#cfg = p.config;
    this.#pii = pii;
    this.#emit = emit;
    this.#left = p.config.seriesLimit > 0 ? p.config.seriesLimit : Number.POSITIVE_INFINITY;
    p.counters.begin();
  }

  /** A whole family at once. */
  push(f: Family): void {
    const samples = f.samples;
    this.begin({ ...f, samples: [] });
    for (const s of samples) this.sample(s);
    this.end();
  }

  begin(head: Family): void {
    this.#head = { name: head.name, type: head.type, typed: head.typed, help: head.help };
    this.#dropped = this.#cfg.dropMetrics.matches(head.name);
    this.#same = undefined;
    this.#count = 0;
    this.#early = undefined;
    this.#lastName = "";
  }

  sample(s: Sample): boolean {
    const stats = this.stats;
    stats.seriesIn++;
    if (this.#dropped) {
      stats.dropped.drop_metrics++;
      return false;
    }
    if (this.#count++ === 0) {
      // When renamed series already wait under this name, this family's own
      // series join them at the end: collect them, the merged family is
      // aggregated as a whole.
      const head = this.#head!;
      this.#same = this.#pending.has(head.name)
        ? new Sink(head, undefined)
        : this.#sinkFor(head, s);
    }
    return this.#route(s);
  }

  end(): void {
    const head = this.#head!;
    const same = this.#same;
    this.#head = undefined;
    this.#same = undefined;
    if (this.#dropped) return;
    if (same === undefined) {
      // Metadata-only families upstream sent stay as they are.
      if (!this.#pending.has(head.name)) this.#emit({ ...head, samples: [] });
      return;
    }
    const pending = this.#pending.get(head.name);
    if (pending === undefined) {
      this.#finish(same);
      return;
    }
    // Series were renamed into this family: merge, write at the end.
    for (const s of this.#early ?? []) {
      if (pending.agg !== undefined) pending.agg.addPartial(s);
      else pending.samples.push(s);
    }
    for (const s of same.samples) this.#add(pending, s, undefined);
    this.#early = undefined;
  }

  finish(): void {
    for (const sink of this.#pending.values()) this.#finish(sink);
    this.#pending.clear();
    this.stats.ruleErrors.invalid_target_label += this.#rs.invalidTargets;
    // Only a scrape read to the end moves counter state towards expiry.
    const counters = this.#p.counters;
    counters.finish();
    this.stats.counterStateSeries = counters.series;
  }

  /** The sink of a family; `first` is its first series (a rule may select by its labels). */
  #sinkFor(head: FamilyHead, first: Sample): Sink {
    return new Sink(
      head,
      aggregateRuleFor(this.#cfg.aggregate, head.name, () => labelNames(first)),
      this.#p.counters,
    );
  }

  /**
   * Adds a series to a sink: `t` is its relabel template (labels in the
   * pipeline's scan) or undefined for a series already relabeled. True when
   * the sink keeps the sample (an aggregation only takes what it needs).
   */
  #add(sink: Sink, s: Sample, t: RelabelTemplate | undefined): boolean {
    const agg = sink.agg;
    if (agg !== undefined) {
      if (t !== undefined) agg.addScanned(t.name, s.value, t, this.#p.scan);
      else agg.addSample(s);
      return false;
    }
    if (t !== undefined) applyTemplate(s, t, this.#p.scan);
    sink.samples.push(s);
    return true;
  }

  /** Stages after relabeling, then the output. */
  #finish(sink: Sink): void {
    const stats = this.stats;
    const n0 = sink.count;
    if (n0 === 0) return;
    let f: Family;
    if (sink.agg !== undefined) {
      f = sink.agg.result();
      // Series left out of running totals (the series budget was spent) count as limit drops.
      const refused = sink.agg.refused;
      stats.dropped.limit += refused;
      stats.dropped.aggregated += Math.max(0, n0 - refused - f.samples.length);
    } else {
      f = { ...sink.head, samples: sink.samples };
      if (sink.unsupported) stats.ruleErrors.aggregate_unsupported_type++;
    }
    if (this.#pii.active) for (const s of f.samples) this.#pii.scrub(s);
    // A series (label set) already served in this scrape with the same or a
    // newer timestamp is not stored by Prometheus: drop it. Rules, empty
    // values, PII scrubbing, renames into another family or upstream itself
    // can produce such duplicates; the first in input order wins.
    const samples = f.samples;
    const ident = this.#ident;
    const scan = this.#p.scan;
    let w = 0;
    for (let r = 0; r < samples.length; r++) {
      const s = samples[r]!;
      if (ident.admit(s, scan)) samples[w++] = s;
      else stats.dropped.duplicate++;
    }
    samples.length = w;
    const n = f.samples.length;
    if (n > this.#left) {
      // Counter, gauge and untyped families may be cut; a histogram or
      // summary is kept whole or not at all (no half histogram is served).
      if (f.type === "histogram" || f.type === "summary" || this.#left === 0) {
        stats.dropped.limit += n;
        return;
      }
      stats.dropped.limit += n - this.#left;
      f = { ...f, samples: f.samples.slice(0, this.#left) };
    }
    this.#left -= f.samples.length;
    if (f.samples.length === 0) return;
    stats.seriesOut += f.samples.length;
    this.#emit(f);
  }

  /** Relabels one series of the current family and hands it to its sink; true when kept. */
  #route(s: Sample): boolean {
    const stats = this.stats;
    const p = this.#p;
    const head = this.#head!;
    const same = this.#same;
    const before = s.name;
    // A label with an empty value is not part of the series (as in the
    // scrape loop): remove it before anything reads the labels.
    if ((s.flags & EMPTY_LABEL_VALUE) !== 0) dropEmptyLabels(s);
    if (p.lead.length > 0) {
      if (before !== this.#lastName) {
        let keep = p.byName.get(before);
        if (keep === undefined) {
          keep = p.lead.every((r) => r.regex.test(before) === (r.action === "keep"));
          if (p.byName.size >= 4096) p.byName.clear();
          p.byName.set(detach(before), keep);
        }
        this.#lastName = before;
        this.#lastKeep = keep;
      }
      if (!this.#lastKeep) {
        stats.dropped.relabel++;
        return false;
      }
    }
    const rest = p.rest;
    const templates = p.templates;
    let t: RelabelTemplate | undefined;
    let outcome: RelabelOutcome = "keep";
    let name = before;
    // Without rules a series needs scanning only when it is aggregated.
    if (templates !== undefined && (rest.length > 0 || same!.agg !== undefined)) {
      p.scan.scan(s);
      t = templates.lookup(before, p.scan);
      if (t.fallback) t = undefined;
    }
    const rs = this.#rs;
    if (t !== undefined) {
      outcome = t.outcome;
      name = t.name;
      rs.invalidTargets += t.invalidTargets;
    } else if (rest.length > 0) {
      outcome = relabel(s, rest, rs);
      name = s.name;
    } else if (before === "" || (s.flags & EMPTY_LABEL_NAME) !== 0) {
      outcome = seriesOutcome(s);
    }
    if (outcome === "drop") {
      stats.dropped.relabel++;
      return false;
    }
    if (outcome === "invalid") {
      // Prometheus fails the whole scrape for such a series
      // (scrape/scrape_append_v2.go); so does the exporter.
      throw new InvalidSeriesError(
        before,
        name === "" ? "missing metric name (__name__ label)" : "empty label name",
      );
    }
    if (name === before) return this.#add(same!, s, t);
    // Renamed: keep histogram/summary membership when the suffix survives.
    const suffix = before.slice(head.name.length);
    let dest: string;
    let proto: FamilyHead | undefined = head;
    if (suffix !== "" && name.endsWith(suffix) && name.length > suffix.length) {
      dest = name.slice(0, -suffix.length);
    } else if (suffix === "" && head.type !== "histogram") {
      dest = name;
    } else {
      dest = name;
      proto = undefined;
    }
    let target = this.#pending.get(dest);
    if (target === undefined && dest === head.name && same!.agg !== undefined) {
      // A series renamed to the family's bare name (a histogram's `h_bucket`
      // renamed `h`): its untyped family takes this family's own series at the
      // end. Those aggregated so far go there as partial aggregates (same rule,
      // and sum/max/min/count of partials is the whole); the rest are collected.
      this.#early = same!.agg.partial().samples;
      this.#same = new Sink(head, undefined);
    }
    if (target === undefined) {
      target = this.#sinkFor(
        proto
          ? { name: dest, type: proto.type, typed: proto.typed, help: proto.help }
          : { name: dest, type: "untyped", typed: false, help: undefined },
        s,
      );
      this.#pending.set(dest, target);
    }
    return this.#add(target, s, t);
  }
}

/** The label names of a series, as scraped (the parser's interned layout when it has one). */
function labelNames(s: Sample): readonly string[] {
  if (s.shape !== undefined && !s.labelsChanged) return s.shape.names;
  const l = s.labels;
  const names: string[] = [];
  for (let i = 0; i < l.length; i += 2) names.push(l[i]!);
  return names;
}

/** A keep/drop rule whose input is the metric name alone. */
function isNameFilter(r: RelabelRule): boolean {
  return (
    (r.action === "keep" || r.action === "drop") &&
    r.sourceLabels.length === 1 &&
    r.sourceLabels[0] === "__name__"
  );
}
