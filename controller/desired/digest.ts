// "Is there anything to apply?" without a request: we stamp each object we
// apply with a digest of what we sent; the live object is up to date when it
// carries the same digest AND still holds every field we set (so a user's edit
// of one of our fields is healed on the next reconcile). No-op reconciles make
// zero writes, and a pod template is never touched needlessly (no rollout).
import { createHash } from "node:crypto";
import { appliedAnnotation } from "./names.ts";
import { sameQuantity } from "./quantity.ts";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function canonical(value: unknown): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    const out: { [key: string]: Json } = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonical(v);
    }
    return out;
  }
  return value as Json;
}

export function digestOf(value: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(canonical(value)))
    .digest("hex")
    .slice(0, 16);
}

interface WithMetadata {
  metadata?:
    | { name?: string | undefined; annotations?: Record<string, string> | undefined }
    | undefined;
}

type Stamped<T extends WithMetadata> = T & {
  metadata: NonNullable<T["metadata"]> & { annotations: Record<string, string> };
};

/** Returns a copy of `desired` whose metadata carries the digest of itself. */
export function stampDigest<T extends WithMetadata>(desired: T): Stamped<T> {
  const digest = digestOf(desired);
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: { ...desired.metadata?.annotations, [appliedAnnotation]: digest },
    },
  };
}

/**
 * Whether every field of `want` is present with the same value in `have`.
 * Lists of objects with a `name` (containers, env, ports, volumes) match by
 * name, as server-side apply merges them; other lists match element-wise by
 * containment. Fields the API server defaulted in `have` are ignored, and
 * values it rewrites compare in its canonical form: quantities under
 * `resources` by amount ("0.5" is "500m"), an empty map or list as absent
 * (omitempty drops it).
 */
export function isSubset(want: unknown, have: unknown, inResources = false): boolean {
  if (have === undefined && isEmpty(want)) return true;
  if (Array.isArray(want)) {
    if (!Array.isArray(have)) return false;
    return want.every((w) => {
      const name = w !== null && typeof w === "object" ? (w as { name?: unknown }).name : undefined;
      if (name !== undefined) {
        const match = have.find(
          (h) => h !== null && typeof h === "object" && (h as { name?: unknown }).name === name,
        );
        return match !== undefined && isSubset(w, match, inResources);
      }
      return have.some((h) => isSubset(w, h, inResources));
    });
  }
  if (want !== null && typeof want === "object") {
    if (have === null || typeof have !== "object" || Array.isArray(have)) return false;
    return Object.entries(want).every(
      ([key, w]) =>
        w === undefined ||
        isSubset(w, (have as Record<string, unknown>)[key], inResources || key === "resources"),
    );
  }
  return want === have || (inResources && sameQuantity(want, have));
}

function isEmpty(value: unknown): boolean {
  if (Array.isArray(value)) return value.length === 0;
  return (
    value !== null &&
    typeof value === "object" &&
    Object.values(value).every((v) => v === undefined || isEmpty(v))
  );
}

export function isUpToDate(desiredStamped: WithMetadata, live: WithMetadata | undefined): boolean {
  if (live === undefined) return false;
  const want = desiredStamped.metadata?.annotations?.[appliedAnnotation];
  return live.metadata?.annotations?.[appliedAnnotation] === want && isSubset(desiredStamped, live);
}
