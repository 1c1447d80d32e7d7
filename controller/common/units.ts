// Durations and sizes as flags and the CRD spell them.
import { UsageError } from "./flags.ts";

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Go-style durations ("10s", "500ms", "1m30s", "1.5h"), the CRD's Duration
 * included, or a bare number of seconds ("1.5") → milliseconds, > 0.
 */
export function parseDuration(flag: string, text: string): number {
  const v = text.trim();
  let ms = 0;
  if (/^\d+(?:\.\d+)?$/.test(v)) ms = Number(v) * 1000;
  else {
    const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
    let at = 0;
    for (let m = part.exec(v); m !== null; m = part.exec(v)) {
      ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
      at = part.lastIndex;
    }
    if (at === 0 || at !== v.length) {
      throw new UsageError(`--${flag}: invalid duration "${text}" (e.g. 10s, 500ms, 1m30s)`);
    }
  }
  if (ms <= 0) throw new UsageError(`--${flag}: must be positive`);
  return ms;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1000,
  kb: 1000,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
};

/** "64MiB", "10MB", "1048576" → bytes. */
export function parseSize(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (m === null || unit === undefined) {
    throw new UsageError(`--${flag}: invalid size "${text}" (e.g. 64MiB, 10MB, 1048576)`);
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0) throw new UsageError(`--${flag}: must be positive`);
  return n;
}
