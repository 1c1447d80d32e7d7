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
// So does the series cache (model/series-cache.ts): a streamed line whose
// series was seen before in its family is not parsed again; what this
// pipeline made of it (dropped, or its output series text and identity) is
// replayed, and only its value is copied.
import { getHeapStatistics } from "node:v8";
import { Aggregator, aggregateSupported, type FamilyHead } from "./aggregate/aggregate.ts";
import { type CounterState, CounterStates, keepsCounterState } from "./aggregate/counter-state.ts";
import { type AggregateRule, aggregateRuleFor, type ExporterConfig } from "./config/config.ts";
import { LabelScan } from "./model/label-scan.ts";
import {
  ByteBlocks,
  DROP_METRICS,
  DROP_RELABEL,
  type FamilyContext,
  KEEP,
  SeriesCache,
  SeriesEntry,
  UNSTABLE_LE,
  UNSTABLE_QUANTILE,
  UTF8,
} from "./model/series-cache.ts";
import { SeriesIdentity } from "./model/identity.ts";
import {
  EMPTY_LABEL_NAME,
  EMPTY_LABEL_VALUE,
  type Family,
  InvalidSeriesError,
  type MetricType,
  RAW_HASH,
  type Sample,
  UTF8_NAMES,
} from "./model/model.ts";
import {
  ExpositionStream,
  type FamilyVisitor,
  type ParseOptions,
  parseVisit,
} from "./parse/parse.ts";
import {
  ChunkPool,
  ExpositionWriter,
  floatLabelStable,
  formatGoFloat,
  hasUtf8Names,
  OUTPUT_CHUNK,
  seriesText,
  type WriterState,
} from "./serialize/serialize.ts";
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
  /** Input lines the series cache answered (not parsed, relabeled or serialized again). */
  seriesCached: number;
  /** Series the series cache holds, and its bytes (keys and output text). */
  cacheSeries: number;
  cacheBytes: number;
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
    seriesCached: 0,
    cacheSeries: 0,
    cacheBytes: 0,
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
  /** Bytes the series cache may hold (keys and output text; default defaultSeriesCacheBytes()). */
  seriesCacheBytes?: number;
}

/**
 * Default bound on the series cache: a third of the heap limit (the
 * controller sizes the sidecar's heap from its memory limit: 256Mi gives
 * ~60 MiB), 16 MiB to 512 MiB. A series takes ~260 bytes with typical rules,
 * so 5,000 Coder workspaces without agent stats (~118,000 series, 30 MB) fit
 * whole in the default sidecar; beyond the bound the rest of the series take
 * the slow path (the same output, more CPU).
 */
export function defaultSeriesCacheBytes(): number {
  const limit = getHeapStatistics().heap_size_limit;
  return Math.min(512 * MIB, Math.max(16 * MIB, Math.floor(limit / 3)));
}

const MIB = 1024 * 1024;

/** What a transformation serves. */
export interface TransformResult {
  /**
   * The exposition, names that are not legacy-valid quoted
   * (escaping=allow-utf-8), in pieces in order (the server joins them with
   * its self-metrics: one copy).
   */
  readonly chunks: readonly Buffer[];
  /** The same as one Buffer (joined on first use). */
  readonly body: Buffer;
  stats: TransformStats;
  /** Whether the body has such names: a scraper that did not ask for them needs them escaped. */
  utf8Names: boolean;
  /**
   * Says `chunks` are no longer read: the pipeline may write the next scrape
   * into the same memory. Optional (without it the next scrape gets fresh
   * memory); never before the last use of `chunks` (or of a `body` that is
   * one of them).
   */
  release(): void;
}

function result(
  chunks: Buffer[],
  stats: TransformStats,
  utf8Names: boolean,
  release: () => void,
): TransformResult {
  let body: Buffer | undefined;
  return {
    chunks,
    get body() {
      body ??= chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      return body;
    },
    stats,
    utf8Names,
    release,
  };
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
  /** Bytes of the last streamed output (sizes the next one's first chunk). */
  #lastOutput = 0;
  /** Output chunks their reader released (see TransformResult.release). */
  readonly #spare = new ChunkPool();
  /** Series seen in earlier scrapes, by raw text (streamed text-format scrapes). */
  readonly cache: SeriesCache;
  readonly scratch = new LineScratch();
  /** The label sets of the scrape in progress (one table, reused: it is sized by the largest scrape). */
  readonly identity = new SeriesIdentity();

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
    this.cache = new SeriesCache({
      maxBytes: options.seriesCacheBytes ?? defaultSeriesCacheBytes(),
    });
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
    const run = new Run(this, this.#pii, { families: (f) => families.push(f) });
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
    if (typeof input !== "string") {
      // Bytes as a stream would bring them (the series cache applies).
      const s = this.stream(options);
      try {
        s.write(input);
      } catch (err) {
        s.abort();
        throw err;
      }
      return s.end();
    }
    const writer = new ExpositionWriter("allow-utf-8", input.length);
    const run = new Run(this, this.#pii, { writer });
    try {
      parseVisit(input, { ...options, shapes: this.scan.shapes }, run);
      run.finish();
    } finally {
      this.#release();
    }
    return result(writer.finish(), run.stats, writer.utf8Names, NOOP);
  }

  /**
   * A transformation fed the payload in pieces as it arrives (see
   * ExpositionStream): memory holds one piece and the family being worked on,
   * never the whole payload. write() and end() throw ParseError for malformed
   * input; abort() (or end()) must be called either way.
   */
  stream(options: ParseOptions = {}): PipelineStream {
    // The first chunk sized like the last output (a small one stays one piece).
    const last = this.#lastOutput;
    const writer = new ExpositionWriter(
      "allow-utf-8",
      last > 0 ? last + (last >> 3) + 4096 : 64 * 1024,
      this.#spare,
    );
    const run = new Run(this, this.#pii, { writer });
    const parser = new ExpositionStream(
      { ...options, shapes: this.scan.shapes, cache: this.cache },
      run,
    );
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
          this.cache.endScrape();
        } finally {
          close();
        }
        const chunks = writer.finish();
        const length = writer.length;
        this.#lastOutput = length;
        // What the next output needs, not more: the pool shrinks with the output.
        this.#spare.keep(Math.ceil(length / OUTPUT_CHUNK));
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          for (const c of chunks) {
            this.#spare.give(
              Buffer.from(c.buffer, c.byteOffset, c.buffer.byteLength - c.byteOffset),
            );
          }
        };
        return result(chunks, run.stats, writer.utf8Names, release);
      },
      abort: close,
    };
  }

  /** Drops per-scrape references (caches must not pin a scraped payload). */
  #release(): void {
    this.scan.release();
    this.scratch.reset();
    this.templates?.release();
    for (const r of this.config.relabel) {
      r.regex.releaseInputs();
      r.scratch.parts.length = 0;
      r.scratch.joined = "";
    }
  }
}

/**
 * Where the series of one output family go: fed to an aggregator as they come
 * (so aggregated series are never built in full), kept as samples (`collect`:
 * they may still be aggregated, or the caller wants samples), or finished
 * into lines at once — series text and identity in a SeriesEntry, the rest of
 * the line in the run's tail bytes — so no sample outlives its line.
 */
class Sink {
  readonly head: FamilyHead;
  readonly samples: Sample[] = [];
  readonly lines: SeriesEntry[] = [];
  /** Per line: [start, end) of its tail in the run's tail bytes. */
  readonly tails: number[] = [];
  readonly agg: Aggregator | undefined;
  readonly collect: boolean;
  /** An aggregation rule matched, but its op does not apply to this type. */
  readonly unsupported: boolean;

  constructor(
    head: FamilyHead,
    rule: AggregateRule | undefined,
    collect: boolean,
    counters?: CounterStates,
  ) {
    this.head = head;
    const ok = rule !== undefined && aggregateSupported(head.type, rule);
    let state: CounterState | undefined;
    if (ok && counters !== undefined && keepsCounterState(head.type, rule)) {
      state = counters.store(rule, head.name, head.type);
    }
    this.agg = ok ? new Aggregator(head, rule, state) : undefined;
    this.collect = collect && !ok;
    this.unsupported = rule !== undefined && !ok;
  }

  get count(): number {
    return this.agg !== undefined ? this.agg.count : this.samples.length + this.lines.length;
  }

  /** Takes the lines of another sink (same family: they are written as they are). */
  takeLines(from: Sink): void {
    for (let i = 0; i < from.lines.length; i++) {
      this.lines.push(from.lines[i]!);
      this.tails.push(from.tails[2 * i]!, from.tails[2 * i + 1]!);
    }
  }
}

/**
 * Per line written directly: where it ends in the output, its label-set
 * identity, the length of its series text and its flags — numbers, not
 * objects, since a family can have hundreds of thousands of lines.
 */
export class DirectLines {
  ends = new Int32Array(1024);
  h1 = new Int32Array(1024);
  h2 = new Int32Array(1024);
  pre = new Int32Array(1024);
  flags = new Int32Array(1024);

  grow(): void {
    const n = this.ends.length * 2;
    const grow = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.ends = grow(this.ends);
    this.h1 = grow(this.h1);
    this.h2 = grow(this.h2);
    this.pre = grow(this.pre);
    this.flags = grow(this.flags);
  }
}

/** Where a run's output goes: the writer, or families of samples (Pipeline.run). */
type Output = { writer: ExpositionWriter } | { families: (f: Family) => void };

/**
 * Per-scrape bytes a pipeline reuses: the text of lines that are not cached,
 * and the tails (value and newline) of every line, until they are written.
 */
export class LineScratch {
  readonly blocks = new ByteBlocks();
  /** The lines of the family being written directly (see Run's #direct). */
  readonly direct = new DirectLines();
  tails: Buffer = Buffer.allocUnsafe(1 << 16);
  tailLen = 0;

  /** Appends b[from, to) to the tails; returns where it starts. */
  tailBytes(b: Uint8Array, from: number, to: number): number {
    const at = this.tailLen;
    const n = to - from;
    this.#ensure(at + n);
    const t = this.tails;
    for (let i = 0; i < n; i++) t[at + i] = b[from + i]!;
    this.tailLen = at + n;
    return at;
  }

  /** Appends text to the tails; returns where it starts. */
  tailText(text: string): number {
    const at = this.tailLen;
    this.#ensure(at + text.length * 3);
    this.tailLen = at + this.tails.write(text, at, "utf8");
    return at;
  }

  reset(): void {
    this.blocks.reset();
    this.tailLen = 0;
    // A large scrape's tails are not kept for good.
    if (this.tails.length > 1 << 24) this.tails = Buffer.allocUnsafe(1 << 16);
  }

  #ensure(n: number): void {
    const b = this.tails;
    if (n <= b.length) return;
    const next = Buffer.allocUnsafe(Math.max(n, b.length * 2));
    b.copy(next, 0, 0, this.tailLen);
    this.tails = next;
  }
}

/**
 * One pass of the pipeline over a stream of series (a FamilyVisitor: series
 * arrive one by one as they are parsed, so those that are aggregated die
 * young; those the series cache knows arrive as hits, never parsed).
 */
class Run implements FamilyVisitor {
  readonly stats = emptyStats();
  readonly #cfg: ExporterConfig;
  readonly #pii: PiiScrubber;
  readonly #out: Output;
  readonly #p: Pipeline;
  readonly #cache: SeriesCache | undefined;
  readonly #rs: RelabelStats = { invalidTargets: 0 };
  /** The series served so far, by label set (see #finish). */
  readonly #ident: SeriesIdentity;
  /** Families that renamed series moved into; written at the end. */
  readonly #pending = new Map<string, Sink>();
  /** Series budget left under series_limit. */
  #left: number;
  /** Whether aggregate rules select by label names (entries then keep them). */
  readonly #byLabels: boolean;

  // The family in progress.
  #head: FamilyHead | undefined;
  #context: FamilyContext | undefined;
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
  /** The label names the series being routed picked its renamed family by (see #route). */
  #routeNames: readonly string[] = NO_NAMES;
  /**
   * The family's own sink when its lines are written as they come (no
   * sample or line is held): duplicates are decided in the same order as at
   * the family's end, so this is the same output. A line that needs the
   * family held (a TYPE it changes, a timestamp) or a merge at its end
   * takes back what was written (#undirect).
   */
  #direct: Sink | undefined;
  /** Where the family starts in the output, and the writer's state there. */
  #familyAt = 0;
  #familyState: WriterState | undefined;
  /** Where its first line starts (after HELP/TYPE). */
  #bodyAt = 0;
  /**
   * Lines given to the direct sink, and those written: per line where it
   * ends, its identity, the length of its series text and its flags —
   * numbers, not objects, since a family can have hundreds of thousands.
   */
  #dGiven = 0;
  #dn = 0;
  /** Kept by the pipeline (see LineScratch.direct): sized by the largest family seen. */
  readonly #d: DirectLines;

  constructor(p: Pipeline, pii: PiiScrubber, out: Output) {
    this.#p = p;
    this.#cfg = p.config;
    this.#pii = pii;
    this.#out = out;
    this.#cache = "writer" in out ? p.cache : undefined;
    this.#left = p.config.seriesLimit > 0 ? p.config.seriesLimit : Number.POSITIVE_INFINITY;
    this.#byLabels = p.config.aggregate.some((r) => r.ifLabels !== undefined);
    this.#ident = p.identity;
    this.#d = p.scratch.direct;
    this.#ident.reset();
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
    this.#context = head.context;
    this.#dropped = this.#cfg.dropMetrics.matches(head.name);
    this.#same = undefined;
    this.#count = 0;
    this.#early = undefined;
    this.#lastName = "";
    this.#direct = undefined;
    this.#dGiven = 0;
    this.#dn = 0;
  }

  sample(s: Sample): boolean {
    const stats = this.stats;
    stats.seriesIn++;
    this.#before = s.name;
    const names = this.#byLabels || this.#count === 0 ? labelNames(s) : NO_NAMES;
    this.#scrapedNames = this.#byLabels ? names : NO_NAMES;
    if (this.#dropped) {
      stats.dropped.drop_metrics++;
      this.#remember(s, DROP_METRICS);
      return false;
    }
    if (this.#count++ === 0) {
      // When renamed series already wait under this name, this family's own
      // series join them at the end: collect them, the merged family is
      // aggregated as a whole.
      const head = this.#head!;
      this.#same = this.#pending.has(head.name)
        ? new Sink(head, undefined, true)
        : this.#sinkFor(head, names);
      this.#startDirect(this.#same);
    }
    return this.#route(s);
  }

  /** A line the series cache knows: what the entry says, as sample() would have done. */
  hit(e: SeriesEntry, b: Uint8Array, tailStart: number, tailEnd: number): boolean {
    const stats = this.stats;
    if (this.#dropped) {
      stats.seriesIn++;
      stats.seriesCached++;
      stats.dropped.drop_metrics++;
      return true;
    }
    const head = this.#head!;
    let same = this.#same;
    if (this.#count === 0) {
      // Collected or aggregated families need samples: those lines are parsed.
      if (this.#pending.has(head.name) || this.#aggregated(head.name, e.labelNames)) return false;
      same = this.#same = new Sink(head, undefined, false);
      this.#startDirect(same);
    } else if (same!.collect || same!.agg !== undefined) {
      return false;
    }
    if (e.outcome !== KEEP) {
      stats.seriesIn++;
      stats.seriesCached++;
      this.#count++;
      stats.dropped.relabel++;
      return true;
    }
    let sink = same!;
    if (e.outName !== e.name) {
      const target = this.#renamed(e.name, e.outName, e.routeNames);
      if (target === undefined || target.collect || target.agg !== undefined) return false;
      sink = target;
    }
    stats.seriesIn++;
    stats.seriesCached++;
    this.#count++;
    this.#rs.invalidTargets += e.invalidTargets;
    this.#push(sink, e, b, tailStart, tailEnd);
    return true;
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
    if (this.#direct !== undefined) this.#undirect();
    // Series were renamed into this family: merge, write at the end (the
    // merged lines are not cached: where they go depends on this scrape).
    this.#context = undefined;
    for (const s of this.#early ?? []) {
      if (pending.agg !== undefined) pending.agg.addPartial(s);
      else pending.samples.push(s);
    }
    for (const s of same.samples) this.#add(pending, s, undefined);
    pending.takeLines(same);
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
    this.stats.cacheSeries = this.#p.cache.size;
    this.stats.cacheBytes = this.#p.cache.bytes;
  }

  /**
   * Whether an aggregate rule takes a family (its own method: a closure in
   * hit() would cost hit() a context allocation on every call).
   */
  #aggregated(name: string, names: readonly string[]): boolean {
    return aggregateRuleFor(this.#cfg.aggregate, name, () => names) !== undefined;
  }

  /** The sink of a family; `names` are its first series' label names (a rule may select by them). */
  #sinkFor(head: FamilyHead, names: readonly string[]): Sink {
    return new Sink(
      head,
      aggregateRuleFor(this.#cfg.aggregate, head.name, () => names),
      !("writer" in this.#out),
      this.#p.counters,
    );
  }

  #emit(f: Family): void {
    const out = this.#out;
    if ("writer" in out) out.writer.writeFamily(f);
    else out.families(f);
  }

  /**
   * Adds a series to a sink: `t` is its relabel template (labels in the
   * pipeline's scan) or undefined for a series already relabeled. True when
   * the sink keeps the sample (an aggregation only takes what it needs, a
   * finished line no sample).
   */
  #add(sink: Sink, s: Sample, t: RelabelTemplate | undefined): boolean {
    const agg = sink.agg;
    if (agg !== undefined) {
      if (t !== undefined) agg.addScanned(t.name, s.value, t, this.#p.scan);
      else agg.addSample(s);
      return false;
    }
    if (t !== undefined) applyTemplate(s, t, this.#p.scan);
    if (sink.collect) {
      sink.samples.push(s);
      return true;
    }
    this.#line(sink, s);
    return false;
  }

  /**
   * Finishes a sample into a line of `sink`: PII scrubbed, its series text
   * and label-set identity in an entry (the cache's, when its key is
   * cacheable: the next scrape's line with that key is then a hit), the rest
   * of the line in the tail bytes.
   */
  #line(sink: Sink, s: Sample): void {
    if (this.#pii.active) this.#pii.scrub(s);
    const verbatim = s.start >= 0;
    const series = verbatim ? undefined : seriesText(s);
    let e = this.#keyed(s, series === undefined ? 0 : series.length * 3);
    // Known already (a line cut by a chunk's end is parsed as text).
    if (e?.cached === true && e.outcome !== KEEP) e = undefined;
    const p = this.#p;
    let tail: string;
    if (e?.cached === true) {
      tail = s.src!.slice(s.keyEnd, s.vEnd + 1);
    } else {
      if (e !== undefined) {
        // Series text after the key, stored as what it shares with the key and the rest.
        const at = e.keyAt + e.keyLen;
        if (series === undefined) {
          e.common = e.keyLen;
          e.restLen = 0;
        } else {
          const blk = e.blk as Buffer;
          const n = blk.write(series, at, "utf8");
          let c = 0;
          while (c < n && c < e.keyLen && blk[e.keyAt + c] === blk[at + c]) c++;
          if (c > 0) blk.copyWithin(at, at + c, at + n);
          e.common = c;
          e.restLen = n - c;
        }
        tail = s.src!.slice(s.keyEnd, s.vEnd + 1);
      } else {
        const text = series ?? s.src!.slice(s.start, s.end);
        if (sink === this.#direct && s.timestamp === undefined && (s.flags & RAW_HASH) === 0) {
          // Not cached and the family's own: written at once, no entry made.
          const flags = lineFlags(s, verbatim);
          const type = sink.head.type;
          if (!unstableIn(type, flags)) {
            const tail =
              series === undefined
                ? text.charCodeAt(text.length - 1) === 10
                  ? ""
                  : "\n"
                : ` ${s.vStart >= 0 ? s.src!.slice(s.vStart, s.vEnd) : formatGoFloat(s.value)}\n`;
            this.#ident.hash(s, p.scan);
            this.#writeDirectText(sink, text, tail, this.#ident.h1, this.#ident.h2, flags);
            return;
          }
        }
        // A line of this scrape only: its text in the scratch blocks.
        e = new SeriesEntry(s.name);
        const scratch = p.scratch.blocks;
        scratch.reserve(text.length * 3);
        const n = (scratch.block as Buffer).write(text, scratch.at, "utf8");
        e.blk = scratch.block;
        e.keyAt = scratch.at;
        e.restLen = n;
        scratch.commit(n);
        if (series === undefined) {
          tail = text.charCodeAt(text.length - 1) === 10 ? "" : "\n";
        } else {
          tail = ` ${s.vStart >= 0 ? s.src!.slice(s.vStart, s.vEnd) : formatGoFloat(s.value)}`;
          tail += s.timestamp !== undefined ? ` ${s.timestamp}\n` : "\n";
        }
        e.timed(s.timestamp, (s.flags & RAW_HASH) !== 0, s.rawHash);
      }
      this.#ident.hash(s, p.scan);
      e.h1 = this.#ident.h1;
      e.h2 = this.#ident.h2;
      e.flags |= lineFlags(s, verbatim);
      if (e.keyLen > 0) {
        e.outName = this.#cache!.intern(s.name === e.name ? e.name : detach(s.name));
        e.invalidTargets = this.#invalidTargets;
        this.#cache!.add(e);
      }
    }
    const at = p.scratch.tailText(tail);
    this.#push(sink, e, p.scratch.tails, at, p.scratch.tailLen);
  }

  /** Writes the lines of `sink` as they come when it can (see #direct). */
  #startDirect(sink: Sink): void {
    const out = this.#out;
    if (!("writer" in out) || sink.collect || sink.agg !== undefined) return;
    this.#direct = sink;
    this.#familyAt = out.writer.length;
    this.#familyState = out.writer.state;
  }

  /** Adds a finished line (its tail is tails[from, to)) to a sink. */
  #push(sink: Sink, e: SeriesEntry, tails: Uint8Array, from: number, to: number): void {
    if (sink === this.#direct) {
      if (!unstableIn(sink.head.type, e.flags) && e.timestamp === undefined && !e.hasRawHash) {
        this.#writeDirect(sink, e, tails, from, to);
        return;
      }
      this.#undirect();
    }
    const scratch = this.#p.scratch;
    const at = tails === scratch.tails ? from : scratch.tailBytes(tails, from, to);
    sink.lines.push(e);
    sink.tails.push(at, at + to - from);
  }

  #writeDirect(sink: Sink, e: SeriesEntry, tails: Uint8Array, from: number, to: number): void {
    this.#dGiven++;
    if (!this.#ident.admitHash(e.h1, e.h2, undefined, false, 0)) {
      this.stats.dropped.duplicate++;
      return;
    }
    const w = this.#writer(sink);
    w.line(e, tails, from, to);
    this.#record(w.length, e.h1, e.h2, e.common + e.restLen, e.flags);
  }

  /** #writeDirect for a line that has no entry: its series text and tail as text. */
  #writeDirectText(
    sink: Sink,
    text: string,
    tail: string,
    h1: number,
    h2: number,
    flags: number,
  ): void {
    this.#dGiven++;
    if (!this.#ident.admitHash(h1, h2, undefined, false, 0)) {
      this.stats.dropped.duplicate++;
      return;
    }
    const w = this.#writer(sink);
    const at = w.length;
    w.write(text);
    const pre = w.length - at;
    if (tail !== "") w.write(tail);
    if ((flags & UTF8) !== 0) w.utf8Names = true;
    this.#record(w.length, h1, h2, pre, flags);
  }

  /** The writer, with the direct family's HELP and TYPE written before its first line. */
  #writer(sink: Sink): ExpositionWriter {
    const w = (this.#out as { writer: ExpositionWriter }).writer;
    if (this.#dn === 0) {
      w.header(sink.head, ALWAYS);
      this.#bodyAt = w.length;
    }
    return w;
  }

  /** Notes a written direct line (see DirectLines). */
  #record(end: number, h1: number, h2: number, pre: number, flags: number): void {
    const n = this.#dn++;
    const d = this.#d;
    if (n === d.ends.length) d.grow();
    d.ends[n] = end;
    d.h1[n] = h1;
    d.h2[n] = h2;
    d.pre[n] = pre;
    d.flags[n] = flags;
  }

  /**
   * The direct sink's lines back into the sink, unwritten and not yet
   * admitted: each becomes a line of this scrape (its text copied out of the
   * output before that is taken back).
   */
  #undirect(): void {
    const sink = this.#direct!;
    this.#direct = undefined;
    const n = this.#dn;
    this.#dn = 0;
    if (n === 0) return;
    const w = (this.#out as { writer: ExpositionWriter }).writer;
    const scratch = this.#p.scratch;
    let start = this.#bodyAt;
    const d = this.#d;
    for (let i = 0; i < n; i++) {
      const end = d.ends[i]!;
      const pre = d.pre[i]!;
      const e = new SeriesEntry("");
      const blocks = scratch.blocks;
      const line = w.read(start, end);
      blocks.reserve(pre);
      blocks.block.set(line.subarray(0, pre), blocks.at);
      e.blk = blocks.block;
      e.keyAt = blocks.at;
      e.restLen = pre;
      blocks.commit(pre);
      e.h1 = d.h1[i]!;
      e.h2 = d.h2[i]!;
      e.flags = d.flags[i]! & (UTF8 | UNSTABLE_LE | UNSTABLE_QUANTILE);
      const at = scratch.tailBytes(line, pre, end - start);
      sink.lines.push(e);
      sink.tails.push(at, scratch.tailLen);
      this.#ident.forget(e.h1, e.h2);
      start = end;
    }
    w.rewind(this.#familyAt, this.#familyState!);
  }

  /** #finish of the direct sink: series_limit takes back what it does not let through. */
  #finishDirect(sink: Sink): void {
    this.#direct = undefined;
    const n = this.#dn;
    this.#dn = 0;
    if (this.#dGiven === 0) return;
    if (sink.unsupported) this.stats.ruleErrors.aggregate_unsupported_type++;
    const keep = this.#limit(sink.head.type, n);
    if (keep === n) return;
    const w = (this.#out as { writer: ExpositionWriter }).writer;
    if (keep === 0) w.rewind(this.#familyAt, this.#familyState!);
    else w.rewind(this.#d.ends[keep - 1]!, w.state);
  }

  /**
   * The cache's entry for the series of `s` when it has one (`cached`), else
   * a new entry with the key written and room for `restMax` bytes after it;
   * undefined when the series cannot be cached (no key, a timestamp, the
   * cache full) or this run has no cache.
   */
  #keyed(s: Sample, restMax: number): SeriesEntry | undefined {
    const cache = this.#cache;
    const ctx = this.#context;
    if (cache === undefined || ctx === undefined || s.keyEnd < 0) return undefined;
    if ((s.flags & RAW_HASH) !== 0) return undefined;
    const key = s.src!.slice(s.keyStart, s.keyEnd);
    const room = cache.room(key.length * 3, restMax);
    if (room === undefined) return undefined;
    const blk = room.block as Buffer;
    const at = room.at;
    const keyLen = blk.write(key, at, "utf8");
    const known = cache.find(blk, at, at + keyLen);
    if (known !== undefined && known.ctx === ctx) return known;
    const e = new SeriesEntry(cache.intern(detach(this.#before)));
    e.ctx = ctx;
    e.blk = blk;
    e.keyAt = at;
    e.keyLen = keyLen;
    e.labelNames = this.#scrapedNames;
    e.routeNames = this.#routeNames;
    return e;
  }

  /**
   * Caches that a series is dropped (by drop_metrics, or by the rules) —
   * not in a family whose lines are parsed anyway (aggregated or collected:
   * hit() refuses those, so an entry would only take memory).
   */
  #remember(s: Sample, outcome: number): void {
    if (s.keyEnd < 0 || this.#cache === undefined) return;
    const same = this.#same;
    if (
      outcome === DROP_RELABEL &&
      (same === undefined || same.collect || same.agg !== undefined)
    ) {
      return;
    }
    const e = this.#keyed(s, 0);
    if (e === undefined || e.cached) return;
    e.outcome = outcome;
    e.outName = e.name;
    e.common = e.keyLen;
    this.#cache.add(e);
  }

  /** Stages after relabeling, then the output. */
  #finish(sink: Sink): void {
    if (sink === this.#direct) {
      this.#finishDirect(sink);
      return;
    }
    if (sink.samples.length === 0 && sink.agg === undefined) {
      this.#finishLines(sink);
      return;
    }
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
    const keep = this.#limit(f.type, w);
    if (keep === 0) return;
    if (keep < w) f = { ...f, samples: f.samples.slice(0, keep) };
    this.#emit(f);
  }

  /** #finish for a sink of finished lines: the same duplicates and limit, then written. */
  #finishLines(sink: Sink): void {
    const stats = this.stats;
    const lines = sink.lines;
    const tails = sink.tails;
    if (lines.length === 0) return;
    if (sink.unsupported) stats.ruleErrors.aggregate_unsupported_type++;
    const ident = this.#ident;
    let w = 0;
    for (let r = 0; r < lines.length; r++) {
      const e = lines[r]!;
      if (!ident.admitHash(e.h1, e.h2, e.timestamp, e.hasRawHash, e.rawHash)) {
        stats.dropped.duplicate++;
        continue;
      }
      lines[w] = e;
      tails[2 * w] = tails[2 * r]!;
      tails[2 * w + 1] = tails[2 * r + 1]!;
      w++;
    }
    const keep = this.#limit(sink.head.type, w);
    if (keep === 0) return;
    const out = this.#out as { writer: ExpositionWriter };
    out.writer.writeLines(sink.head, lines, tails, this.#p.scratch.tails, keep);
  }

  /**
   * How many of a family's n series (duplicates gone) series_limit lets
   * through, counted. Counter, gauge and untyped families may be cut; a
   * histogram or summary is kept whole or not at all (no half histogram is served).
   */
  #limit(type: MetricType, n: number): number {
    const stats = this.stats;
    let keep = n;
    if (n > this.#left) {
      if (type === "histogram" || type === "summary" || this.#left === 0) {
        stats.dropped.limit += n;
        return 0;
      }
      stats.dropped.limit += n - this.#left;
      keep = this.#left;
    }
    this.#left -= keep;
    stats.seriesOut += keep;
    return keep;
  }

  /** Relabels one series of the current family and hands it to its sink; true when kept. */
  #route(s: Sample): boolean {
    const stats = this.stats;
    const p = this.#p;
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
        this.#remember(s, DROP_RELABEL);
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
    const invalid0 = rs.invalidTargets;
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
      this.#remember(s, DROP_RELABEL);
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
    this.#invalidTargets = rs.invalidTargets - invalid0;
    this.#routeNames = NO_NAMES;
    if (name === before) return this.#add(same!, s, t);
    if (this.#byLabels) this.#routeNames = labelNames(s);
    const target = this.#renamed(before, name, this.#routeNames)!;
    return this.#add(target, s, t);
  }

  // What a cache entry of the series being routed records (see #keyed).
  /** Its name as scraped. */
  #before = "";
  /** Its label names as scraped, when aggregate rules select by them. */
  #scrapedNames: readonly string[] = NO_NAMES;
  /** Invalid targets its rules skipped. */
  #invalidTargets = 0;

  /**
   * The sink a series of the current family renamed from `before` to `name`
   * goes to (created when new); `names` pick its aggregation.
   * Histogram/summary membership is kept when the suffix survives.
   */
  #renamed(before: string, name: string, names: readonly string[]): Sink | undefined {
    const head = this.#head!;
    const same = this.#same!;
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
    if (target === undefined && dest === head.name && same.agg !== undefined) {
      // A series renamed to the family's bare name (a histogram's `h_bucket`
      // renamed `h`): its untyped family takes this family's own series at the
      // end. Those aggregated so far go there as partial aggregates (same rule,
      // and sum/max/min/count of partials is the whole); the rest are collected.
      this.#early = same.agg.partial().samples;
      this.#same = new Sink(head, undefined, true);
    }
    if (target === undefined) {
      target = this.#sinkFor(
        proto
          ? { name: dest, type: proto.type, typed: proto.typed, help: proto.help }
          : { name: dest, type: "untyped", typed: false, help: undefined },
        names,
      );
      this.#pending.set(dest, target);
    }
    return target;
  }
}

const NO_NAMES: readonly string[] = [];

/** The flags a finished line keeps: UTF-8 names, and float labels Prometheus would read back otherwise. */
function lineFlags(s: Sample, verbatim: boolean): number {
  let f = 0;
  if (verbatim ? (s.flags & UTF8_NAMES) !== 0 : hasUtf8Names(s)) f |= UTF8;
  if (!floatLabelStable(s, "histogram")) f |= UNSTABLE_LE;
  if (!floatLabelStable(s, "summary")) f |= UNSTABLE_QUANTILE;
  return f;
}

/** Whether a line with `flags` makes a family of `type` untyped (see the writer's floatLabelsStable). */
function unstableIn(type: MetricType, flags: number): boolean {
  return (
    (type === "histogram" && (flags & UNSTABLE_LE) !== 0) ||
    (type === "summary" && (flags & UNSTABLE_QUANTILE) !== 0)
  );
}
const NOOP = () => {};
const ALWAYS = () => true;

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
