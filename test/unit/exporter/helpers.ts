// Shared helpers for the exporter's unit tests.
import { type Family, Sample } from "../../../controller/exporter/model/model.ts";

/** A sample built from a label map (insertion order kept). */
export function sample(name: string, labels: Record<string, string> = {}, value = 1): Sample {
  return new Sample(name, Object.entries(labels).flat(), value);
}

/** The labels of a sample as a map, with `__name__`. */
export function labelMap(s: Sample): Record<string, string> {
  const out: Record<string, string> = { __name__: s.name };
  const l = s.labels;
  for (let i = 0; i < l.length; i += 2) out[l[i]!] = l[i + 1]!;
  return out;
}

export interface PlainSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp?: number;
}

export interface PlainFamily {
  name: string;
  type: string;
  help?: string;
  samples: PlainSample[];
}

/** Families as plain data, for deepStrictEqual. */
export function plain(families: readonly Family[]): PlainFamily[] {
  return families.map((f) => {
    const out: PlainFamily = { name: f.name, type: f.type, samples: [] };
    if (f.help !== undefined) out.help = f.help;
    for (const s of f.samples) {
      const labels: Record<string, string> = {};
      for (let i = 0; i < s.labels.length; i += 2) labels[s.labels[i]!] = s.labels[i + 1]!;
      const p: PlainSample = { name: s.name, labels, value: s.value };
      if (s.timestamp !== undefined) p.timestamp = s.timestamp;
      out.samples.push(p);
    }
    return out;
  });
}
