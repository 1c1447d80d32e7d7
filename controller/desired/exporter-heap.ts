// V8 heap settings for the exporter sidecar. The exporter streams each scrape
// (its live heap stays at a few tens of MB even for 5,000 workspaces), but V8
// sizes its heap for the whole machine and lets garbage pile up to that size
// before collecting. A cap sized to the container, as V8 would size it for a
// machine of that memory, keeps the sidecar's footprint near what it uses:
//   - new space: 16 MB semi-spaces (a scrape's short-lived objects fit);
//   - old space: the container's memory limit less 128 MiB for everything
//     else (new space, code, buffers), at most 3/4 of it; 256 MiB without a
//     limit. V8 then collects before the kernel's OOM killer would step in.

/** Old-space cap when the sidecar has no memory limit, in MiB. */
export const DEFAULT_OLD_SPACE_MIB = 256;
/** Never below this (the exporter's own working set plus headroom), in MiB. */
const MIN_OLD_SPACE_MIB = 64;
/** Room left in the container for all but old space, in MiB. */
const OTHER_MIB = 128;

const SUFFIX: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Bytes of a Kubernetes quantity such as 512Mi, 1G, 1e9 or 268435456; undefined when unreadable. */
export function quantityBytes(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === "number") return q;
  const m = /^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([KMGTPE]i|[kMGTPE])|[eE]([+-]?[0-9]+))?$/.exec(
    q,
  );
  if (m === null) return undefined;
  const n = Number(m[1]);
  if (m[3] !== undefined) return n * 10 ** Number(m[3]);
  return n * SUFFIX[m[2] ?? ""]!;
}

/** NODE_OPTIONS for the exporter container, given its memory limit. */
export function exporterNodeOptions(memoryLimit: string | number | undefined): string {
  const bytes = quantityBytes(memoryLimit);
  const limitMib = bytes === undefined ? undefined : bytes / 2 ** 20;
  const oldSpace =
    limitMib === undefined
      ? DEFAULT_OLD_SPACE_MIB
      : Math.max(MIN_OLD_SPACE_MIB, Math.floor(Math.min(limitMib * 0.75, limitMib - OTHER_MIB)));
  return `--max-semi-space-size=16 --max-old-space-size=${oldSpace}`;
}
