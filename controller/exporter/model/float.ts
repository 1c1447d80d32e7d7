// Go's float text forms, as Prometheus and client_golang write and read them.

/** Go's strconv.FormatFloat(v, 'g', -1, 64), as used by expfmt. */
export function formatGoFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const e = v.toExponential(); // shortest round-trip digits, e.g. "1.5e+7"
  const at = e.indexOf("e");
  const exp = Number(e.slice(at + 1));
  // Go uses the exponent form below 1e-4 and from 1e+06 on (JS only from 1e21),
  // with at least two exponent digits.
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? "-" : "+";
    const digits = String(Math.abs(exp)).padStart(2, "0");
    return `${e.slice(0, at)}e${sign}${digits}`;
  }
  return String(v);
}

/**
 * Prometheus's labels.FormatOpenMetricsFloat: formatGoFloat, with ".0" added
 * when the result has neither "." nor "e" (1 → "1.0", -0 → "0.0").
 */
export function formatOpenMetricsFloat(v: number): string {
  if (v === 0) return "0.0";
  const s = formatGoFloat(v);
  if (Number.isNaN(v) || !Number.isFinite(v)) return s;
  return s.includes(".") || s.includes("e") ? s : `${s}.0`;
}

const HEX_FLOAT = /^([+-]?)0[xX]((?:[0-9a-fA-F_]*)(?:\.[0-9a-fA-F_]*)?)[pP]([+-]?[0-9_]+)$/;

/**
 * Go's strconv.ParseFloat(s, 64) in full: decimal, hexadecimal with a `p`
 * exponent (underscores allowed between its digits), and inf/infinity/nan.
 * Returns undefined where Go returns an error (syntax, or out of range).
 */
export function parseGoFloatFull(s: string): number | undefined {
  const l = s.toLowerCase();
  const body = l.charCodeAt(0) === 43 || l.charCodeAt(0) === 45 ? l.slice(1) : l;
  if (body === "inf" || body === "infinity") {
    return l.charCodeAt(0) === 45 ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  if (l === "nan") return Number.NaN;
  const hex = HEX_FLOAT.exec(s);
  if (hex !== null) return parseHexFloat(hex[1]!, hex[2]!, hex[3]!, s);
  // Decimal: digits, at most one dot, an optional exponent; no underscores.
  if (!/^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(s)) return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

function parseHexFloat(sign: string, mant: string, exp: string, s: string): number | undefined {
  // Underscores only between digits, or right after the 0x prefix (underscoreOK).
  if (s.includes("_") && !underscoreOK(s)) return undefined;
  const digits = mant.replaceAll("_", "");
  const dot = digits.indexOf(".");
  const intPart = dot < 0 ? digits : digits.slice(0, dot);
  const frac = dot < 0 ? "" : digits.slice(dot + 1);
  if (intPart === "" && frac === "") return undefined;
  const all = intPart + frac;
  const e = Number(exp.replaceAll("_", "")) - 4 * frac.length;
  let m = BigInt(`0x${all === "" ? "0" : all}`);
  if (m === 0n) return sign === "-" ? -0 : 0;
  // Exact value m·2^e; scale so the rounding to 53 bits happens once.
  let e2 = e;
  const bits = m.toString(2).length;
  if (bits > 64) {
    // Keep 64 significant bits plus a sticky bit for correct rounding.
    const shift = BigInt(bits - 64);
    const sticky = (m & ((1n << shift) - 1n)) !== 0n ? 1n : 0n;
    m = (m >> shift) | sticky;
    e2 += bits - 64;
  }
  let v = Number(m) * 2 ** Math.max(-1074, Math.min(1023, e2));
  const rest = e2 - Math.max(-1074, Math.min(1023, e2));
  if (rest !== 0) v *= 2 ** rest;
  if (!Number.isFinite(v)) return undefined;
  return sign === "-" ? -v : v;
}

/** Go's underscoreOK for a string with a base prefix (0x…). */
function underscoreOK(s: string): boolean {
  let saw = "^";
  let i = 0;
  if (s[0] === "+" || s[0] === "-") i++;
  // Base prefix counts as a digit for "underscore as digit separator".
  if (s.length - i >= 2 && s[i] === "0" && /[xX]/.test(s[i + 1]!)) {
    i += 2;
    saw = "0";
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (/[0-9a-fA-F]/.test(c) && !/[pP]/.test(c)) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/**
 * Whether s[a, b) is already what formatOpenMetricsFloat would write for its
 * value, checked without parsing: "+Inf", "-Inf", "NaN", or a plain decimal
 * with a dot, no superfluous zero, at most 15 significant digits (which then
 * round-trip) and an exponent from -4 to 5 (where Go writes no `e`). Anything
 * else (1, 1e3, 0.50, …) is left to parse and format.
 */
export function isCanonicalFloat(s: string, a: number, b: number): boolean {
  const n = b - a;
  if (n === 4 && (s.startsWith("+Inf", a) || s.startsWith("-Inf", a))) return true;
  if (n === 3 && s.startsWith("NaN", a)) return true;
  let p = a;
  if (s.charCodeAt(p) === 45) p++; // -
  const intStart = p;
  while (p < b && s.charCodeAt(p) >= 48 && s.charCodeAt(p) <= 57) p++;
  const intLen = p - intStart;
  if (intLen === 0 || intLen > 6 || p >= b || s.charCodeAt(p) !== 46) return false;
  const zeroInt = intLen === 1 && s.charCodeAt(intStart) === 48;
  if (!zeroInt && s.charCodeAt(intStart) === 48) return false; // leading zero
  p++;
  const fracStart = p;
  while (p < b && s.charCodeAt(p) >= 48 && s.charCodeAt(p) <= 57) p++;
  if (p !== b || p === fracStart) return false;
  const fracLen = b - fracStart;
  if (fracLen === 1 && s.charCodeAt(fracStart) === 48) {
    // "x.0": canonical for a non-zero integer x; "0.0" only without a sign.
    return !zeroInt || intStart === a;
  }
  if (s.charCodeAt(b - 1) === 48) return false; // trailing zero
  let lead = 0;
  if (zeroInt) while (s.charCodeAt(fracStart + lead) === 48) lead++;
  if (zeroInt && lead > 3) return false; // below 1e-4: Go writes an exponent
  const significant = zeroInt ? fracLen - lead : intLen + fracLen;
  return significant <= 15;
}
