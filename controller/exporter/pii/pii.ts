// Personal data in labels (usernames, owners, emails): either dropped, or
// replaced by a keyed hash — hex HMAC-SHA256(key, value) truncated to
// `hashLength` characters — which is stable across scrapes and restarts (same
// key, same value → same hash), so dashboards can still group by user without
// showing who it is, and cannot be reversed by hashing a list of known names
// without the key. Without a key the labels to hash are dropped instead.
import { createHmac } from "node:crypto";
import type { PiiConfig } from "../config/config.ts";
import type { Sample } from "../model/model.ts";
import { detach } from "../model/detach.ts";

/** Bound on cached value → hash entries. */
const CACHE_LIMIT = 65536;

export class PiiScrubber {
  readonly #drop: Set<string>;
  readonly #hash: Set<string>;
  readonly #key: Uint8Array | undefined;
  readonly #length: number;
  readonly #cache = new Map<string, string>();
  readonly active: boolean;

  constructor(config: PiiConfig, key: Uint8Array | undefined) {
    this.#key = key !== undefined && key.length > 0 ? key : undefined;
    this.#length = config.hashLength;
    this.#drop = new Set(config.dropLabels);
    this.#hash = new Set(config.hashLabels);
    if (this.#key === undefined) {
      for (const l of config.hashLabels) this.#drop.add(l);
      this.#hash.clear();
    }
    this.active = this.#drop.size > 0 || this.#hash.size > 0;
  }

  /** Whether labels to hash are being dropped for lack of a key. */
  get missingKey(): boolean {
    return this.#key === undefined && this.#drop.size > 0 && this.#hash.size === 0;
  }

  hash(value: string): string {
    let h = this.#cache.get(value);
    if (h === undefined) {
      h = createHmac("sha256", this.#key!)
        .update(value, "utf8")
        .digest("hex")
        .slice(0, this.#length);
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(detach(value), h);
    }
    return h;
  }

  /** Rewrites the sample's labels (hashing in place, a fresh array when labels are dropped); true when labels were dropped. */
  scrub(s: Sample): boolean {
    let l = s.labels;
    let dropAny = false;
    for (let i = 0; i < l.length; i += 2) {
      const name = l[i]!;
      if (this.#hash.has(name)) {
        s.touch();
        l = s.labels;
        l[i + 1] = this.hash(l[i + 1]!);
      } else if (this.#drop.has(name)) {
        dropAny = true;
      }
    }
    if (!dropAny) return false;
    const out: string[] = [];
    for (let i = 0; i < l.length; i += 2) {
      if (!this.#drop.has(l[i]!)) out.push(l[i]!, l[i + 1]!);
    }
    s.labels = out;
    return true;
  }
}
