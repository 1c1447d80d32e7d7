// Content negotiation of the exporter's /metrics, as client_golang does it
// (common/expfmt NegotiateAccept with goautoneg), for a server that offers
// only the text format: the answer is always text 0.0.4, and the Accept
// header decides how names that are not legacy-valid are written. Prometheus 3
// asks for escaping=allow-utf-8 (names quoted); a scraper that does not ask
// gets escaping=underscores (model.NameEscapingScheme), as from coderd itself.
// test/unit/exporter/negotiate.test.ts compares this with expfmt (promref).
import { parseGoFloatFull } from "../model/float.ts";
import type { Escaping } from "../serialize/serialize.ts";
import { goSort } from "./gosort.ts";

/** One clause of an Accept header, as goautoneg.ParseAccept reads it. */
interface Clause {
  type: string;
  subType: string;
  q: number;
  params: Map<string, string>;
}

const ESCAPINGS: ReadonlySet<string> = new Set(["allow-utf-8", "underscores", "dots", "values"]);

/** The Content-Type of the text format with an escaping scheme, as expfmt writes it. */
export function textContentType(escaping: Escaping): string {
  return `text/plain; version=0.0.4; charset=utf-8; escaping=${escaping}`;
}

/**
 * The escaping scheme expfmt.NegotiateAccept(h, FmtText) picks for an Accept
 * header (undefined: none): the `escaping` parameter of the clauses it walks
 * in goautoneg's order until one matches text 0.0.4 (the last valid one seen
 * wins), else "underscores".
 */
export function negotiateEscaping(accept: string | undefined): Escaping {
  let escaping: Escaping = "underscores";
  for (const c of parseAccept(accept ?? "")) {
    const e = c.params.get("escaping");
    if (e !== undefined && ESCAPINGS.has(e)) escaping = e as Escaping;
    if (matchesText(c)) return escaping;
  }
  return escaping;
}

/** expfmt's matchFormat(clause, FmtText). */
function matchesText(c: Clause): boolean {
  if (c.type !== "*" && c.type !== "text") return false;
  if (c.subType !== "*" && c.subType !== "plain") return false;
  let version = c.params.get("version") ?? "";
  if (version === "" && c.type === "text" && c.subType === "plain") version = "0.0.4";
  return version === "0.0.4";
}

/** goautoneg's nextSplitElement: split at the first `sep`. */
function cut(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

/** strings.TrimFunc(s, r == ' '). */
function trimSpaces(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) === 32) a++;
  while (b > a && s.charCodeAt(b - 1) === 32) b--;
  return s.slice(a, b);
}

/** strconv.ParseFloat(s, 32) with the error ignored, as goautoneg reads q. */
function parseQ(s: string): number {
  const v = parseGoFloatFull(s);
  if (v !== undefined) return Math.fround(v);
  // Out of float64 range: Go returns ±Inf (with an error goautoneg ignores).
  if (/^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+$/.test(s) && !/[eE]-/.test(s)) {
    return s.startsWith("-") ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  return 0;
}

/** goautoneg.ParseAccept: the clauses, sorted by its comparator with Go's sort.Sort. */
export function parseAccept(header: string): Clause[] {
  const out: Clause[] = [];
  let remaining = header;
  while (remaining.length > 0) {
    let part: string;
    [part, remaining] = cut(remaining, ",");
    part = trimSpaces(part);
    const [range, rest] = cut(part, ";");
    const [t, sub] = cut(range, "/");
    const type = trimSpaces(t);
    let subType: string;
    if (sub.length === 0) {
      if (type !== "*") continue;
      subType = "*";
    } else {
      const [s1, more] = cut(sub, "/");
      if (more.length > 0) continue;
      subType = trimSpaces(s1);
    }
    const c: Clause = { type, subType, q: 1, params: new Map() };
    let params = rest;
    while (params.length > 0) {
      let p: string;
      [p, params] = cut(params, ";");
      const [k, v] = cut(p, "=");
      if (v.length === 0) continue;
      const [value, extra] = cut(v, "=");
      if (extra.length !== 0) continue;
      const key = trimSpaces(k);
      if (key === "q") c.q = parseQ(value);
      else c.params.set(key, trimSpaces(value));
    }
    out.push(c);
  }
  goSort(out, (a, b) => {
    if (a.q > b.q) return true;
    if (a.type !== "*" && b.type === "*") return true;
    return a.subType !== "*" && b.subType === "*";
  });
  return out;
}
