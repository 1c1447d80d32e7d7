// Relabel regexes compiled as Prometheus 3 compiles them (relabel.NewRegexp:
// `^(?s:` + regex + `)$`, so anchored at both ends and `.` matching a newline),
// as RE2 via re2js (linear time, so a user's `(a+)+$` cannot stall a scrape),
// plus Go's regexp.Expand template semantics for `$1`, `${1}`, `${name}`.
//
// Matching is the hot path of relabeling, so each Regex:
//   - recognises trivial patterns (`(.*)`, a literal, `a|b|c`, `prefix.*`)
//     and answers them without running the engine;
//   - memoises results per input in a bounded map (metric names and template
//     names repeat across thousands of series).
import { RE2JS } from "re2js";
import { detach } from "../model/detach.ts";

/** Bound on memoised inputs per regex; the map is cleared when it fills. */
const MEMO_LIMIT = 8192;

/** Submatch index pairs [start0, end0, start1, end1, …] (-1 for unset groups). */
export type Match = readonly number[];

export class Regex {
  /** The pattern as the user wrote it (unanchored). */
  readonly source: string;
  readonly re: RE2JS;
  readonly groupCount: number;
  readonly names: Record<string, number>;
  readonly #literals: Set<string> | undefined;
  readonly #prefix: string | undefined;
  readonly #matchAll: boolean;
  readonly #testMemo = new Map<string, boolean>();
  readonly #matchMemo = new Map<string, Match | null>();
  // One-entry caches in front of the memo maps: consecutive samples of a
  // family usually present the very same (interned) string.
  #lastTestInput: string | undefined;
  #lastTest = false;
  #lastMatchInput: string | undefined;
  #lastMatch: Match | null = null;

  /** Throws RE2JS syntax errors; use compileRegex for a value-typed result. */
  constructor(source: string) {
    this.source = source;
    // The same text Prometheus compiles: a source like `a)|(b` escapes the
    // group here exactly as it does there.
    this.re = RE2JS.compile(`^(?s:${source})$`);
    this.groupCount = this.re.groupCount();
    this.names = { ...this.re.namedGroups() };
    this.#matchAll = source === "(.*)" || source === ".*";
    this.#literals = literalAlternatives(source);
    this.#prefix = literalPrefixStar(source);
  }

  /** Forgets the one-entry caches (called after each scrape so they retain no payload). */
  releaseInputs(): void {
    this.#lastTestInput = undefined;
    this.#lastMatchInput = undefined;
    this.#lastMatch = null;
  }

  /** Whether the regex matches (Go's MatchString on the ^(?s:…)$ regex). */
  test(input: string): boolean {
    if (this.#matchAll) return true;
    if (this.#literals !== undefined) return this.#literals.has(input);
    if (this.#prefix !== undefined) return input.startsWith(this.#prefix);
    if (input === this.#lastTestInput) return this.#lastTest;
    const memo = this.#testMemo;
    let ok = memo.get(input);
    if (ok === undefined) {
      // Go's MatchString: a match anywhere. The ^…$ around the source makes
      // that the whole input, unless the source escapes it (`a)|(b`).
      ok = this.re.test(input);
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(detach(input), ok);
    }
    this.#lastTestInput = input;
    this.#lastTest = ok;
    return ok;
  }

  /** Submatch indexes of the leftmost match (Go's FindStringSubmatchIndex), or null. */
  match(input: string): Match | null {
    if (this.#matchAll && this.groupCount === (this.source === "(.*)" ? 1 : 0)) {
      return this.groupCount === 1 ? [0, input.length, 0, input.length] : [0, input.length];
    }
    if (input === this.#lastMatchInput) return this.#lastMatch;
    if (this.groupCount === 0 && (this.#literals !== undefined || this.#prefix !== undefined)) {
      const m = this.test(input) ? [0, input.length] : null;
      this.#lastMatchInput = input;
      this.#lastMatch = m;
      return m;
    }
    const memo = this.#matchMemo;
    let result = memo.get(input);
    if (result === undefined) {
      result = null;
      const m = this.re.matcher(input);
      if (m.find()) {
        const idx: number[] = [];
        for (let g = 0; g <= this.groupCount; g++) idx.push(m.start(g), m.end(g));
        result = idx;
      }
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(detach(input), result);
    }
    this.#lastMatchInput = input;
    this.#lastMatch = result;
    return result;
  }
}

/**
 * Go's Regexp.ReplaceAllString(input, template): every match, left to right,
 * replaced by the expanded template; an empty match right after a match is
 * not replaced. (With a source that keeps the ^…$ anchoring, the one match is
 * the whole input.)
 */
export function replaceAll(regex: Regex, input: string, tpl: Template): string {
  const m = regex.re.matcher(input);
  let out = "";
  let lastEnd = 0;
  let searchPos = 0;
  while (searchPos <= input.length && m.find(searchPos)) {
    const a0 = m.start();
    const a1 = m.end();
    out += input.slice(lastEnd, a0);
    if (a1 > lastEnd || a0 === 0) {
      const idx: number[] = [];
      for (let g = 0; g <= regex.groupCount; g++) idx.push(m.start(g), m.end(g));
      out += expand(tpl, input, idx);
    }
    lastEnd = a1;
    // Advance past the match, at least one character.
    const width = (input.codePointAt(searchPos) ?? 0) > 0xffff ? 2 : 1;
    if (searchPos + width > a1) searchPos += width;
    else if (searchPos + 1 > a1) searchPos++;
    else searchPos = a1;
  }
  return out + input.slice(lastEnd);
}

/** A compiled regex or the engine's message. */
export function compileRegex(
  source: string,
): { ok: true; regex: Regex } | { ok: false; error: string } {
  try {
    return { ok: true, regex: new Regex(source) };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return { ok: false, error: msg };
  }
}

const LITERAL = /^[A-Za-z0-9_:\- /=,@]+$/;

/** `a|b|c` of plain literals (no metacharacters) → the set of alternatives. */
function literalAlternatives(src: string): Set<string> | undefined {
  let body = src;
  if (body.startsWith("(?:") && body.endsWith(")") && balancedInner(body.slice(3, -1))) {
    body = body.slice(3, -1);
  }
  const parts = body.split("|");
  if (!parts.every((p) => p.length > 0 && LITERAL.test(p))) {
    if (src === "") return new Set([""]);
    return undefined;
  }
  return new Set(parts);
}

/** `literal.*` → "literal" (a prefix test; `.` matches newlines too). */
function literalPrefixStar(src: string): string | undefined {
  if (!src.endsWith(".*")) return undefined;
  const lit = src.slice(0, -2);
  return lit.length > 0 && LITERAL.test(lit) ? lit : undefined;
}

function balancedInner(s: string): boolean {
  return !s.includes("(") && !s.includes(")");
}

// ---------------------------------------------------------------------------
// Go regexp.Expand templates.

/** A template compiled against one regex: literal text and group references. */
export type Template = readonly (string | number)[];

function isWordRune(ch: string): boolean {
  return /^[\p{L}\p{Nd}_]$/u.test(ch);
}

/**
 * Compiles `template` as Go's Regexp.Expand reads it: `$$` is a literal `$`;
 * `$name` takes the longest run of letters, digits and `_`; `${name}` is
 * braced; a name that is a number refers to that group, otherwise to a named
 * group; an unknown group expands to "" and a malformed `$` is literal.
 * Group references become numbers (-1 = always empty).
 */
export function compileTemplate(template: string, regex: Regex): Template {
  const parts: (string | number)[] = [];
  let lit = "";
  let i = 0;
  const t = template;
  while (i < t.length) {
    const dollar = t.indexOf("$", i);
    if (dollar < 0) {
      lit += t.slice(i);
      break;
    }
    lit += t.slice(i, dollar);
    i = dollar;
    if (t[i + 1] === "$") {
      lit += "$";
      i += 2;
      continue;
    }
    const ref = extractRef(t, i);
    if (ref === undefined) {
      lit += "$";
      i++;
      continue;
    }
    if (lit !== "") parts.push(lit);
    lit = "";
    parts.push(groupIndex(ref.name, regex));
    i = ref.end;
  }
  if (lit !== "") parts.push(lit);
  return parts;
}

function extractRef(t: string, at: number): { name: string; end: number } | undefined {
  if (t.length - at < 2) return undefined;
  let i = at + 1;
  const brace = t[i] === "{";
  if (brace) i++;
  const start = i;
  for (const ch of t.slice(i)) {
    if (!isWordRune(ch)) break;
    i += ch.length;
  }
  if (i === start) return undefined;
  const name = t.slice(start, i);
  if (brace) {
    if (t[i] !== "}") return undefined;
    i++;
  }
  return { name, end: i };
}

function groupIndex(name: string, regex: Regex): number {
  if (/^[0-9]+$/.test(name)) {
    // Go stops reading a number once it reaches 1e8 and then treats it as a name.
    const n = name.length > 9 ? -1 : Number(name);
    if (n >= 0) return n <= regex.groupCount ? n : -1;
  }
  const idx = regex.names[name];
  return idx === undefined ? -1 : idx;
}

/** Expands a compiled template with a match of `input`. */
export function expand(tpl: Template, input: string, m: Match): string {
  if (tpl.length === 1 && typeof tpl[0] === "string") return tpl[0];
  let out = "";
  for (const part of tpl) {
    if (typeof part === "string") {
      out += part;
      continue;
    }
    if (part < 0) continue;
    const s = m[2 * part];
    const e = m[2 * part + 1];
    if (s === undefined || e === undefined || s < 0) continue;
    out += input.slice(s, e);
  }
  return out;
}
