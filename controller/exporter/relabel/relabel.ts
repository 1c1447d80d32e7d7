// Prometheus `relabel_config` for metric relabeling, with the semantics of
// Prometheus 3's model/relabel and the scrape loop around it (the version in
// test/tools/prometheus/go.mod; test/unit/exporter/prometheus-differential
// checks every case against that code): same defaults (action replace,
// separator ";", regex "(.*)" compiled as `^(?s:…)$`, replacement "$1"), same
// validation rules and messages, same per-action behaviour (an empty
// replacement result deletes the target label, expanded target names that are
// not valid are skipped, labelmap walks the labels in labels.Builder's order,
// hashmod takes the last 8 bytes of the md5 sum big-endian modulo `modulus`,
// lowercase/uppercase map code point by code point as Go does).
//
// Names are validated as Prometheus 3 validates them by default (UTF-8: any
// non-empty string), so `target_label: http.route` is a valid target; the
// serializer quotes or escapes such names for the scraper (see serialize.ts).
// As in the scrape loop, a label with an empty value does not exist: it is
// removed before the first rule (labels.Builder.Reset) and whenever a rule
// sets it to "".
import { createHash } from "node:crypto";
import {
  RELABEL_ACTIONS as ACTIONS,
  type RelabelAction as Action,
} from "../../api/relabel-actions.ts";
import type { Sample } from "../model/model.ts";
import { goToLower, goToUpper } from "./casemap.ts";
import {
  compileRegex,
  compileTemplate,
  expand,
  Regex,
  replaceAll,
  type Template,
} from "./regex.ts";

export interface RelabelRule {
  action: Action;
  sourceLabels: readonly string[];
  separator: string;
  regex: Regex;
  /** Whether `regex` is the untouched default (enables Prometheus's replace fast path). */
  regexIsDefault: boolean;
  modulus: bigint;
  targetLabel: string;
  replacement: string;
  targetTemplate: Template;
  replacementTemplate: Template;
  /** Per-rule scratch for sourceValue (the last source values and their join). */
  scratch: { parts: string[]; joined: string };
}

/** A configuration error: where (a path like `metric_relabel_configs[2].regex`) and what. */
export interface ConfigError {
  path: string;
  message: string;
}

const DEFAULT_REGEX_SOURCE = "(.*)";
let defaultRegex: Regex | undefined;
function sharedDefaultRegex(): Regex {
  defaultRegex ??= new Regex(DEFAULT_REGEX_SOURCE);
  return defaultRegex;
}

/**
 * A valid label (or metric) name under Prometheus 3's default UTF-8
 * validation (model.UTF8Validation): non-empty, well-formed Unicode.
 */
export function isValidUtf8Name(s: string): boolean {
  return s.length > 0 && s.isWellFormed();
}

const KNOWN_KEYS = new Set([
  "source_labels",
  "separator",
  "regex",
  "modulus",
  "target_label",
  "replacement",
  "action",
]);
const CAMEL_HINT: Record<string, string> = {
  sourceLabels: "source_labels",
  targetLabel: "target_label",
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Scalars YAML may hand us for a string field (Go's yaml decodes them as text). */
function asString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  return undefined;
}

/**
 * Validates one raw rule (a parsed YAML mapping) like Prometheus's
 * Config.UnmarshalYAML + Validate and compiles it. `path` prefixes error paths.
 */
export function compileRelabelRule(
  raw: unknown,
  path: string,
): { ok: true; rule: RelabelRule } | { ok: false; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  const err = (field: string, message: string) =>
    errors.push({ path: field === "" ? path : `${path}.${field}`, message });
  if (!isRecord(raw)) {
    err("", "relabel rule must be a mapping");
    return { ok: false, errors };
  }
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) {
      const hint = CAMEL_HINT[key];
      err(key, `unknown field "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`);
    }
  }

  // action
  let action: Action = "replace";
  if ("action" in raw) {
    const a = asString(raw.action);
    if (a === undefined || a === "") {
      err("action", "relabel action cannot be empty");
    } else if ((ACTIONS as readonly string[]).includes(a.toLowerCase())) {
      action = a.toLowerCase() as Action;
    } else {
      err("action", `unknown relabel action "${a}"`);
    }
  }

  // source_labels
  let sourceLabels: string[] = [];
  const hasSource = "source_labels" in raw && raw.source_labels !== null;
  if (hasSource) {
    const v = raw.source_labels;
    if (!Array.isArray(v)) {
      err("source_labels", "must be a list of label names");
    } else {
      v.forEach((item, i) => {
        const s = asString(item);
        // model.LabelName.UnmarshalYAML, UTF-8 validation.
        if (s === undefined || !isValidUtf8Name(s)) {
          err(`source_labels[${i}]`, `${JSON.stringify(item)} is not a valid label name`);
        } else {
          sourceLabels.push(s);
        }
      });
    }
  }
  if (errors.length > 0) sourceLabels = [];

  const separator = field(raw, "separator", ";", err);
  const targetLabel = field(raw, "target_label", "", err);
  const replacement = field(raw, "replacement", "$1", err);

  // regex
  let regex = sharedDefaultRegex();
  let regexIsDefault = true;
  if ("regex" in raw) {
    const src = raw.regex === null ? "" : asString(raw.regex);
    if (src === undefined) {
      err("regex", "must be a string");
    } else {
      const c = compileRegex(src);
      if (c.ok) {
        regex = c.regex;
        regexIsDefault = false;
      } else {
        err("regex", `invalid RE2 regular expression ${JSON.stringify(src)}: ${c.error}`);
      }
    }
  }

  // modulus
  let modulus = 0n;
  if ("modulus" in raw && raw.modulus !== null) {
    const m = raw.modulus;
    if (typeof m === "bigint" && m >= 0n) modulus = m;
    else if (typeof m === "number" && Number.isSafeInteger(m) && m >= 0) modulus = BigInt(m);
    else err("modulus", "must be a non-negative integer");
  }
  if (errors.length > 0) return { ok: false, errors };

  // Prometheus's Config.Validate, in its order.
  const validate = (): [string, string] | undefined => {
    const a = action;
    if (modulus === 0n && a === "hashmod") {
      return ["modulus", "relabel configuration for hashmod requires non-zero modulus"];
    }
    const needsTarget = ["replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal"];
    if (needsTarget.includes(a) && targetLabel === "") {
      return [
        "target_label",
        `relabel configuration for ${a} action requires 'target_label' value`,
      ];
    }
    const invalidTarget = (): [string, string] => [
      "target_label",
      `${JSON.stringify(targetLabel)} is invalid 'target_label' for ${a} action`,
    ];
    // With UTF-8 validation a template target ($1…) is checked like any
    // name, before expansion (config.go: isValidLabelNameWithRegexVarFn).
    const targetChecked = ["replace", "lowercase", "uppercase", "keepequal", "dropequal"];
    if (targetChecked.includes(a) && !isValidUtf8Name(targetLabel)) return invalidTarget();
    const caseOrEqual = ["lowercase", "uppercase", "keepequal", "dropequal"];
    if (caseOrEqual.includes(a) && replacement !== "$1") {
      return ["replacement", `'replacement' can not be set for ${a} action`];
    }
    if (a === "labelmap" && !isValidUtf8Name(replacement)) {
      return [
        "replacement",
        `${JSON.stringify(replacement)} is invalid 'replacement' for ${a} action`,
      ];
    }
    if (a === "hashmod" && !isValidUtf8Name(targetLabel)) return invalidTarget();
    if (a === "keepequal" || a === "dropequal") {
      if (!regexIsDefault || modulus !== 0n || separator !== ";" || replacement !== "$1") {
        return [
          "",
          `${a} action requires only 'source_labels' and \`target_label\`, and no other fields`,
        ];
      }
    }
    if (a === "labeldrop" || a === "labelkeep") {
      if (
        hasSource ||
        targetLabel !== "" ||
        modulus !== 0n ||
        separator !== ";" ||
        replacement !== "$1"
      ) {
        return ["", `${a} action requires only 'regex', and no other fields`];
      }
    }
    return undefined;
  };
  const bad = validate();
  if (bad !== undefined) {
    err(bad[0], bad[1]);
    return { ok: false, errors };
  }

  return {
    ok: true,
    rule: {
      action,
      sourceLabels,
      separator,
      regex,
      regexIsDefault,
      modulus,
      targetLabel,
      replacement,
      targetTemplate: compileTemplate(targetLabel, regex),
      replacementTemplate: compileTemplate(replacement, regex),
      scratch: { parts: [], joined: "" },
    },
  };
}

function field(
  raw: Record<string, unknown>,
  key: string,
  dflt: string,
  err: (field: string, message: string) => void,
): string {
  if (!(key in raw)) return dflt;
  // go-yaml leaves a null string field at Go's zero value, "".
  if (raw[key] === null) return "";
  const s = asString(raw[key]);
  if (s === undefined) {
    err(key, "must be a string");
    return dflt;
  }
  return s;
}

// ---------------------------------------------------------------------------
// Applying rules to one sample.

/**
 * Why a sample left the pipeline, if it did. "drop": a keep/drop rule removed
 * it, or no label at all is left (the scrape loop treats an empty label set
 * as dropped); "invalid": labels are left but no metric name, or a label with
 * an empty name — Prometheus fails the whole scrape for such a series.
 */
export type RelabelOutcome = "keep" | "drop" | "invalid";

function getLabel(s: Sample, name: string): string {
  if (name === "__name__") return s.name;
  const l = s.labels;
  for (let i = 0; i < l.length; i += 2) if (l[i] === name) return l[i + 1]!;
  return "";
}

/**
 * The names rules set during one relabel() call, in the order labels.Builder
 * keeps its `add` list: labelmap visits them after the scraped ones.
 */
const added: string[] = [];

function markAdded(name: string): void {
  if (!added.includes(name)) added.push(name);
}

function unmarkAdded(name: string): void {
  const i = added.indexOf(name);
  if (i >= 0) added.splice(i, 1);
}

/** Removes label i (an index into the flat labels array). */
function removeAt(s: Sample, i: number): void {
  s.touch();
  s.labels.splice(i, 2);
}

/** Sets (or, for an empty value, deletes) a label, like labels.Builder.Set. */
function setLabel(s: Sample, name: string, value: string): void {
  if (value === "") unmarkAdded(name);
  else markAdded(name);
  if (name === "__name__") {
    if (s.name !== value) {
      s.touch();
      s.name = value;
    }
    return;
  }
  const l = s.labels;
  for (let i = 0; i < l.length; i += 2) {
    if (l[i] === name) {
      if (value === "") {
        removeAt(s, i);
      } else if (l[i + 1] !== value) {
        s.touch();
        s.labels[i + 1] = value;
      }
      return;
    }
  }
  if (value === "") return;
  s.touch();
  s.labels.push(name, value);
}

/** labeldrop (drop = true) / labelkeep over every label including `__name__`, without allocating when nothing changes. */
function filterLabels(s: Sample, rule: RelabelRule, drop: boolean): void {
  if (s.name !== "" && rule.regex.test("__name__") === drop) {
    s.touch();
    s.name = "";
    unmarkAdded("__name__");
  }
  const l = s.labels;
  let w = 0;
  for (let r = 0; r < l.length; r += 2) {
    if (rule.regex.test(l[r]!) === drop) {
      if (added.length > 0) unmarkAdded(l[r]!);
      continue;
    }
    if (w !== r) {
      l[w] = l[r]!;
      l[w + 1] = l[r + 1]!;
    }
    w += 2;
  }
  if (w === l.length) return;
  s.touch();
  s.labels.length = w;
}

/** Go's string order (UTF-8 bytes), which is code point order. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (code points above U+FFFF) sort after every other unit in
    // UTF-8, though not in UTF-16.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * The labels (with `__name__`) as labels.Builder.Range visits them, with
 * their values at the start: the scraped labels not set by a rule, sorted by
 * name, then those rules set, in the order they were first set.
 */
function rangeLabels(s: Sample): [string, string][] {
  const base: [string, string][] = [];
  const adds: [string, string][] = [];
  if (s.name !== "") (added.includes("__name__") ? adds : base).push(["__name__", s.name]);
  const l = s.labels;
  for (let i = 0; i < l.length; i += 2) {
    (added.includes(l[i]!) ? adds : base).push([l[i]!, l[i + 1]!]);
  }
  base.sort((x, y) => compareNames(x[0], y[0]));
  if (adds.length > 1) adds.sort((x, y) => added.indexOf(x[0]) - added.indexOf(y[0]));
  return base.concat(adds);
}

function sourceValue(s: Sample, rule: RelabelRule): string {
  const src = rule.sourceLabels;
  if (src.length === 1) return getLabel(s, src[0]!);
  if (src.length === 0) return "";
  // Consecutive samples often carry the very same (interned) values: reuse the
  // joined string so the regex's one-entry cache hits without re-joining.
  const parts = rule.scratch.parts;
  let same = parts.length === src.length;
  for (let i = 0; i < src.length; i++) {
    const v = getLabel(s, src[i]!);
    if (parts[i] !== v) {
      same = false;
      parts[i] = v;
    }
  }
  if (same) return rule.scratch.joined;
  parts.length = src.length;
  const joined = parts.join(rule.separator);
  rule.scratch.joined = joined;
  return joined;
}

/** md5 of `val`, last 8 bytes as a big-endian uint64, modulo `modulus` (Prometheus's hashmod). */
export function hashmod(val: string, modulus: bigint): bigint {
  const sum = createHash("md5").update(val, "utf8").digest();
  return sum.readBigUInt64BE(8) % modulus;
}

/** Counters the caller turns into self-metrics. */
export interface RelabelStats {
  /** Expanded replace targets that were not valid label names (skipped). */
  invalidTargets: number;
}

/** Applies one rule in place; false when the sample is dropped. */
function applyRule(s: Sample, rule: RelabelRule, stats: RelabelStats): boolean {
  switch (rule.action) {
    case "drop":
      return !rule.regex.test(sourceValue(s, rule));
    case "keep":
      return rule.regex.test(sourceValue(s, rule));
    case "dropequal":
      return getLabel(s, rule.targetLabel) !== sourceValue(s, rule);
    case "keepequal":
      return getLabel(s, rule.targetLabel) === sourceValue(s, rule);
    case "replace": {
      const val = sourceValue(s, rule);
      if (
        val === "" &&
        rule.regexIsDefault &&
        !rule.targetLabel.includes("$") &&
        !rule.replacement.includes("$")
      ) {
        setLabel(s, rule.targetLabel, rule.replacement);
        return true;
      }
      const m = rule.regex.match(val);
      if (m === null) return true;
      const target = expand(rule.targetTemplate, val, m);
      if (!isValidUtf8Name(target)) {
        stats.invalidTargets++;
        return true;
      }
      setLabel(s, target, expand(rule.replacementTemplate, val, m));
      return true;
    }
    case "lowercase":
      setLabel(s, rule.targetLabel, goToLower(sourceValue(s, rule)));
      return true;
    case "uppercase":
      setLabel(s, rule.targetLabel, goToUpper(sourceValue(s, rule)));
      return true;
    case "hashmod":
      setLabel(s, rule.targetLabel, hashmod(sourceValue(s, rule), rule.modulus).toString());
      return true;
    case "labelmap": {
      // Prometheus sets ReplaceAllString's result unchecked: an empty name
      // makes an invalid series (the scrape fails), any other is valid UTF-8.
      for (const [name, value] of rangeLabels(s)) {
        if (!rule.regex.test(name)) continue;
        setLabel(s, replaceAll(rule.regex, name, rule.replacementTemplate), value);
      }
      return true;
    }
    case "labeldrop":
      filterLabels(s, rule, true);
      return true;
    case "labelkeep":
      filterLabels(s, rule, false);
      return true;
  }
}

/** Removes labels with an empty value (labels.Builder.Reset does, before any rule). */
export function dropEmptyLabels(s: Sample): boolean {
  const l = s.labels;
  let i = 1;
  while (i < l.length && l[i] !== "") i += 2;
  if (i >= l.length) return false;
  s.touch();
  const kept = s.labels;
  let w = 0;
  for (let r = 0; r < kept.length; r += 2) {
    if (kept[r + 1] === "") continue;
    kept[w++] = kept[r]!;
    kept[w++] = kept[r + 1]!;
  }
  kept.length = w;
  return true;
}

/** What a relabeled series is: kept, dropped (no label left) or invalid. */
export function seriesOutcome(s: Sample): RelabelOutcome {
  const l = s.labels;
  if (s.name === "") return l.length === 0 ? "drop" : "invalid";
  for (let i = 0; i < l.length; i += 2) if (l[i] === "") return "invalid";
  return "keep";
}

/**
 * Applies `rules` in order to the sample, mutating its name and labels
 * (empty-valued labels go first, as in the scrape loop).
 */
export function relabel(
  s: Sample,
  rules: readonly RelabelRule[],
  stats: RelabelStats,
): RelabelOutcome {
  dropEmptyLabels(s);
  added.length = 0;
  for (const rule of rules) {
    if (!applyRule(s, rule, stats)) return "drop";
  }
  return seriesOutcome(s);
}
