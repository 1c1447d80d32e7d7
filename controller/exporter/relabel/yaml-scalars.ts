// Prometheus reads relabel rules with go-yaml v2 into typed Go fields, and a
// YAML scalar written without quotes can mean something else there than in
// the YAML 1.2 parser the exporter uses: `replacement: 1.10` is the string
// "1.10" in Go (a string field takes the text as written), 1.1 here; a null
// string field is "" in Go, not the default; `modulus: 010` is 8 (YAML 1.1
// octal), `1_000` is 1000 and `5.5` is 5. This rewrites the plain scalars of
// a parsed rule list so validation sees what Prometheus would.
import { isMap, isScalar, isSeq, type Scalar } from "yaml";

/** Fields Prometheus decodes into Go strings (action too: its UnmarshalYAML reads a string). */
const STRING_FIELDS = new Set(["separator", "regex", "target_label", "replacement", "action"]);

/** A plain, untagged scalar (one whose meaning depends on the YAML version). */
function isPlain(v: unknown): v is Scalar {
  return isScalar(v) && v.type === "PLAIN" && v.tag === undefined;
}

/** A string field: the text as written, or "" for a null. */
function asGoString(v: Scalar): void {
  if (typeof v.value === "string") return;
  v.value = v.value === null ? "" : (v.source ?? String(v.value));
}

/** Rewrites the plain scalars of a rule list node (a YAML sequence of mappings) in place. */
export function goScalarsInRules(list: unknown): void {
  if (!isSeq(list)) return;
  for (const rule of list.items) {
    if (!isMap(rule)) continue;
    for (const pair of rule.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      const v = pair.value;
      if (key === "source_labels" && isSeq(v)) {
        for (const item of v.items) if (isPlain(item)) asGoString(item);
      } else if (typeof key === "string" && STRING_FIELDS.has(key) && isPlain(v)) {
        asGoString(v);
      } else if (key === "modulus" && isPlain(v) && v.value !== null) {
        // An unusable value stays a string, which validation refuses.
        v.value = yamlV2Uint64(v.source ?? String(v.value)) ?? String(v.value);
      }
    }
  }
}

const YAML_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * A plain scalar decoded into a Go uint64 by go-yaml v2: underscores dropped,
 * then strconv.ParseInt/ParseUint with base 0 (0x, 0o, 0b, leading-0 octal),
 * else a float truncated toward zero. undefined where go-yaml errs.
 */
export function yamlV2Uint64(src: string): bigint | undefined {
  const plain = src.replaceAll("_", "");
  const i = goParseIntBase0(plain);
  if (i !== undefined) return i >= 0n && i <= MAX_UINT64 ? i : undefined;
  if (YAML_FLOAT.test(plain)) {
    const f = Number(plain);
    if (Number.isFinite(f) && f >= 0 && f < 2 ** 64) return BigInt(Math.trunc(f));
  }
  return undefined;
}

/** strconv.ParseInt(s, 0, 64), or ParseUint(s, 0, 64) beyond int64; no underscores. */
function goParseIntBase0(s: string): bigint | undefined {
  let sign = 1n;
  let body = s;
  if (body.startsWith("+") || body.startsWith("-")) {
    if (body.startsWith("-")) sign = -1n;
    body = body.slice(1);
  }
  let digits: RegExp;
  let prefix = "";
  const p = body.slice(0, 2).toLowerCase();
  if (p === "0x") {
    digits = /^[0-9a-fA-F]+$/;
    prefix = "0x";
    body = body.slice(2);
  } else if (p === "0o") {
    digits = /^[0-7]+$/;
    prefix = "0o";
    body = body.slice(2);
  } else if (p === "0b") {
    digits = /^[01]+$/;
    prefix = "0b";
    body = body.slice(2);
  } else if (body.length > 1 && body.startsWith("0")) {
    digits = /^[0-7]+$/;
    prefix = "0o";
    body = body.slice(1);
  } else {
    digits = /^[0-9]+$/;
  }
  if (!digits.test(body)) return undefined;
  const v = sign * BigInt(`${prefix}${body}`);
  if (v < -(1n << 63n) || v > MAX_UINT64 || (sign < 0n && v < -(1n << 63n))) return undefined;
  return v;
}
