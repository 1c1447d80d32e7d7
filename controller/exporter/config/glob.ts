// Shell-style globs for metric names: `*` matches any run of characters, `?`
// one character, everything else itself. Matching is linear-ish (two-pointer
// with single-star backtracking), never a backtracking regex.
import { detach } from "../model/detach.ts";

export class GlobSet {
  readonly patterns: readonly string[];
  readonly #exact = new Set<string>();
  readonly #prefixes: string[] = [];
  readonly #general: string[] = [];
  readonly #memo = new Map<string, boolean>();

  constructor(patterns: readonly string[]) {
    this.patterns = patterns;
    for (const p of patterns) {
      const star = p.indexOf("*");
      if (!p.includes("?") && star < 0) this.#exact.add(p);
      else if (!p.includes("?") && star === p.length - 1) this.#prefixes.push(p.slice(0, -1));
      else this.#general.push(p);
    }
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  matches(name: string): boolean {
    if (this.#exact.has(name)) return true;
    for (const p of this.#prefixes) if (name.startsWith(p)) return true;
    if (this.#general.length === 0) return false;
    const hit = this.#memo.get(name);
    if (hit !== undefined) return hit;
    const ok = this.#general.some((p) => globMatch(p, name));
    if (this.#memo.size > 4096) this.#memo.clear();
    this.#memo.set(detach(name), ok);
    return ok;
  }
}

/** Whether `name` matches the glob `pattern` entirely. */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    const pc = pattern[p];
    if (pc === "*") {
      starP = p++;
      starN = n;
    } else if (pc !== undefined && (pc === "?" || pc === name[n])) {
      p++;
      n++;
    } else if (starP >= 0) {
      p = starP + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

const GLOB = /^[a-zA-Z0-9_:*?]+$/;

/** Whether `s` is a usable metric-name glob. */
export function isValidGlob(s: string): boolean {
  return GLOB.test(s);
}
