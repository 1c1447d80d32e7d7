// The transformation pipeline over one parsed scrape:
//   drop_metrics → metric_relabel_configs → aggregate → pii → dedup → series_limit
// Each stage is its own module; this file only sequences them, regroups
// renamed series into families and counts what happened for self-metrics.
import { aggregateFamily } from "./aggregate.ts";
import type { ExporterConfig } from "./config.ts";
import { type Family, releaseInternedNames } from "./model.ts";
import { decodeExposition, type ParseOptions, parseEach, parseEachAsync } from "./parse.ts";
import { ExpositionWriter, seriesText } from "./serialize.ts";
import { PiiScrubber } from "./pii.ts";
import { type RelabelRule, relabel, type RelabelStats } from "./relabel.ts";

export interface TransformStats {
  seriesIn: number;
  seriesOut: number;
  /** Series removed, by reason (drop_metrics, relabel, aggregated, duplicate, limit, invalid). */
  dropped: Record<DropReason, number>;
  /** Rule problems met while applying a valid config, by reason. */
  ruleErrors: Record<RuleErrorReason, number>;
}
export type DropReason =
  | "drop_metrics"
  | "relabel"
  | "aggregated"
  | "duplicate"
  | "limit"
  | "invalid";
export type RuleErrorReason =
  | "invalid_target_label"
  | "invalid_metric_name"
  | "aggregate_unsupported_type";

export function emptyStats(): TransformStats {
  return {
    seriesIn: 0,
    seriesOut: 0,
    dropped: { drop_metrics: 0, relabel: 0, aggregated: 0, duplicate: 0, limit: 0, invalid: 0 },
    ruleErrors: { invalid_target_label: 0, invalid_metric_name: 0, aggregate_unsupported_type: 0 },
  };
}

/** A configured pipeline; keeps caches (hashes) across scrapes. */
export class Pipeline {
  readonly config: ExporterConfig;
  readonly #pii: PiiScrubber;

  constructor(config: ExporterConfig, hashKey?: Uint8Array) {
    this.config = config;
    this.#pii = new PiiScrubber(config.pii, hashKey);
  }

  /** True when hash_labels are configured but no key was given (they are dropped). */
  get missingHashKey(): boolean {
    return this.#pii.missingKey;
  }

  /** Runs the pipeline over parsed families; consumes (mutates) `input`. */
  run(input: Family[]): { families: Family[]; stats: TransformStats } {
    const families: Family[] = [];
    const run = new Run(this, this.#pii, (f) => families.push(f));
    for (const f of input) run.push(f);
    run.finish();
    return { families, stats: run.stats };
  }

  /**
   * Parses, transforms and serializes a payload family by family, so only one
   * family's samples are alive at a time (memory stays near the payload size
   * and short-lived objects die young). Throws ParseError for malformed input.
   */
  transform(
    input: string | Uint8Array,
    options: ParseOptions = {},
  ): { body: Buffer; stats: TransformStats } {
    const { writer, run, text } = this.#start(input);
    try {
      parseEach(text, options, (f) => run.push(f));
      run.finish();
    } finally {
      this.#release();
    }
    return { body: writer.finish(), stats: run.stats };
  }

  /** transform(), yielding to the event loop every `sliceLines` lines. */
  async transformAsync(
    input: string | Uint8Array,
    options: ParseOptions = {},
    sliceLines?: number,
  ): Promise<{ body: Buffer; stats: TransformStats }> {
    const { writer, run, text } = this.#start(input);
    try {
      await parseEachAsync(text, options, (f) => run.push(f), sliceLines);
      run.finish();
    } finally {
      this.#release();
    }
    return { body: writer.finish(), stats: run.stats };
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
    releaseInternedNames();
    for (const r of this.config.relabel) {
      r.regex.releaseInputs();
      r.scratch.parts.length = 0;
      r.scratch.joined = "";
    }
  }
}

/** One pass of the pipeline over a stream of families. */
class Run {
  readonly stats = emptyStats();
  readonly #cfg: ExporterConfig;
  readonly #pii: PiiScrubber;
  readonly #sink: (f: Family) => void;
  readonly #lead: readonly RelabelRule[];
  readonly #rest: readonly RelabelRule[];
  readonly #byName = new Map<string, boolean>();
  readonly #rs: RelabelStats = { invalidTargets: 0, lossy: false };
  /** Families that renamed series moved into; written at the end. */
  readonly #pending = new Map<string, Family>();
  /** Series budget left under series_limit. */
  #left: number;

  constructor(p: Pipeline, pii: PiiScrubber, sink: (f: Family) => void) {
    this.#cfg = p.config;
    this.#pii = pii;
    this.#sink = sink;
    const rules = p.config.relabel;
    // Leading keep/drop rules on __name__ alone decide per metric name: they
    // are answered once per name, before labels are even materialised.
    let lead = 0;
    while (lead < rules.length && isNameFilter(rules[lead]!)) lead++;
    this.#lead = rules.slice(0, lead);
    this.#rest = rules.slice(lead);
    this.#left = p.config.seriesLimit > 0 ? p.config.seriesLimit : Number.POSITIVE_INFINITY;
  }

  push(f: Family): void {
    const stats = this.stats;
    const n = f.samples.length;
    stats.seriesIn += n;
    if (this.#cfg.dropMetrics.matches(f.name)) {
      stats.dropped.drop_metrics += n;
      return;
    }
    if (n === 0) {
      // Metadata-only families upstream sent stay as they are.
      if (!this.#pending.has(f.name)) this.#sink(f);
      return;
    }
    this.#rs.lossy = false;
    const fam = this.#cfg.relabel.length > 0 ? this.#relabel(f) : f;
    const pending = this.#pending.get(fam.name);
    if (pending !== undefined) {
      // Series were renamed into this family earlier: merge, write at the end.
      for (const s of fam.samples) pending.samples.push(s);
      return;
    }
    this.#finish(fam, this.#rs.lossy);
  }

  finish(): void {
    // Renamed series may now share a name with others: always check duplicates.
    for (const f of this.#pending.values()) this.#finish(f, true);
    this.#pending.clear();
    this.stats.ruleErrors.invalid_target_label += this.#rs.invalidTargets;
  }

  /** Stages after relabeling, then the sink. */
  #finish(input: Family, lossy: boolean): void {
    const stats = this.stats;
    let f = input;
    if (f.samples.length === 0) return;
    const rule = this.#cfg.aggregate.find((r) => r.metrics.matches(f.name));
    if (rule !== undefined) {
      const r = aggregateFamily(f, rule);
      if (r.family === undefined) {
        stats.ruleErrors.aggregate_unsupported_type++;
      } else {
        stats.dropped.aggregated += f.samples.length - r.family.samples.length;
        f = r.family;
      }
    }
    let mayDuplicate = lossy;
    if (this.#pii.active) {
      for (const s of f.samples) if (this.#pii.scrub(s)) mayDuplicate = true;
    }
    if (mayDuplicate) dedup(f, stats);
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
    this.#sink(f);
  }

  /** Applies the relabel rules; returns the family of the series that kept their name. */
  #relabel(fam: Family): Family {
    const stats = this.stats;
    const lead = this.#lead;
    const rest = this.#rest;
    const same: Family = { ...fam, samples: [] };
    this.#rs.lossy = false;
    let lastName = "";
    let lastKeep = true;
    for (const s of fam.samples) {
      const before = s.name;
      if (lead.length > 0) {
        if (before !== lastName) {
          let keep = this.#byName.get(before);
          if (keep === undefined) {
            keep = lead.every((r) => r.regex.test(before) === (r.action === "keep"));
            this.#byName.set(before, keep);
          }
          lastName = before;
          lastKeep = keep;
        }
        if (!lastKeep) {
          stats.dropped.relabel++;
          continue;
        }
      }
      const outcome = rest.length > 0 ? relabel(s, rest, this.#rs) : "keep";
      if (outcome === "drop") {
        stats.dropped.relabel++;
        continue;
      }
      if (outcome === "invalid") {
        stats.dropped.invalid++;
        stats.ruleErrors.invalid_metric_name++;
        continue;
      }
      if (s.name === before) {
        same.samples.push(s);
        continue;
      }
      // Renamed: keep histogram/summary membership when the suffix survives.
      const suffix = before.slice(fam.name.length);
      let name: string;
      let proto: Family | undefined = fam;
      if (suffix !== "" && s.name.endsWith(suffix) && s.name.length > suffix.length) {
        name = s.name.slice(0, -suffix.length);
      } else if (suffix === "" && fam.type !== "histogram") {
        name = s.name;
      } else {
        name = s.name;
        proto = undefined;
      }
      let target = this.#pending.get(name);
      if (target === undefined) {
        target = proto
          ? { name, type: proto.type, typed: proto.typed, help: proto.help, samples: [] }
          : { name, type: "untyped", typed: false, help: undefined, samples: [] };
        this.#pending.set(name, target);
      }
      target.samples.push(s);
    }
    return same;
  }
}

/** A keep/drop rule whose input is the metric name alone. */
function isNameFilter(r: RelabelRule): boolean {
  return (
    (r.action === "keep" || r.action === "drop") &&
    r.sourceLabels.length === 1 &&
    r.sourceLabels[0] === "__name__"
  );
}

/**
 * Drops series whose label set already appeared in the family (first one
 * wins), as a scrape would. Only families with changed samples can have new
 * duplicates; the key is the series text as written (labels in written order).
 */
function dedup(f: Family, stats: TransformStats): void {
  const samples = f.samples;
  let changed = false;
  for (const s of samples) {
    if (s.start < 0) {
      changed = true;
      break;
    }
  }
  if (!changed) return;
  const seen = new Set<string>();
  let w = 0;
  for (let r = 0; r < samples.length; r++) {
    const s = samples[r]!;
    const k = seriesText(s);
    if (seen.has(k)) {
      stats.dropped.duplicate++;
      continue;
    }
    seen.add(k);
    samples[w++] = s;
  }
  samples.length = w;
}
