// fast-check generators shared by the property tests (property.test.ts, run
// long by `make fuzz`) and the Prometheus differential test
// (prometheus-differential.test.ts), which feeds the same kinds of payloads
// and rules to the exporter and to Prometheus's own code.
import fc from "fast-check";
import { RELABEL_ACTIONS as ACTIONS } from "../../../controller/api/relabel-actions.ts";
import { type Family, type MetricType, Sample } from "../../../controller/exporter/model/model.ts";

export const metricName = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,20}$/);
export const labelName = fc
  .stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,12}$/)
  .filter((n) => n !== "__name__" && n !== "le" && n !== "quantile");
export const text = fc.string({ unit: "grapheme", maxLength: 20 });
export const value = fc.oneof(
  fc.double(),
  fc.integer({ min: -1e9, max: 1e9 }),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0),
);
export const timestamp = fc.option(fc.integer({ min: 0, max: 2 ** 50 }), { nil: undefined });

export const labels = fc
  .uniqueArray(fc.tuple(labelName, text), { selector: ([n]) => n, maxLength: 4 })
  .map((pairs) => pairs.flat());

export const family = fc.record({
  type: fc.constantFrom<MetricType>("counter", "gauge", "untyped"),
  help: fc.option(
    text.filter((h) => h.trim() !== "" || h === ""),
    { nil: undefined },
  ),
  typed: fc.boolean(),
  samples: fc.array(fc.record({ labels, value, timestamp }), { minLength: 1, maxLength: 5 }),
});

export const families = fc
  .uniqueArray(fc.tuple(metricName, family), { selector: ([n]) => n, minLength: 0, maxLength: 6 })
  .map((list) =>
    list.map(
      ([name, f]): Family => ({
        name,
        type: f.typed ? f.type : "untyped",
        typed: f.typed,
        help: f.help === "" ? undefined : f.help,
        samples: f.samples.map((s) => new Sample(name, s.labels, s.value, s.timestamp)),
      }),
    ),
  );

/** Relabel rules of every action, from pieces that make valid and invalid ones. */
export const action = fc.constantFrom(...ACTIONS);
export const piece = fc.constantFrom(
  "a",
  "__name__",
  "le",
  "template_name",
  "$1",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Prometheus's replacement syntax
  "${1}",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Prometheus's replacement syntax
  "${name}",
  ".*",
  "(.+)",
  "(a+)+$",
  "[",
  "x|y",
  "",
  ";",
  "h_.*",
  "\\d",
);
export const rule = fc.record(
  {
    action,
    source_labels: fc.array(fc.constantFrom("a", "__name__", "le", "username", "nope"), {
      maxLength: 3,
    }),
    regex: fc.array(piece, { maxLength: 3 }).map((p) => p.join("")),
    target_label: fc.array(piece, { minLength: 1, maxLength: 2 }).map((p) => p.join("")),
    replacement: fc.array(piece, { maxLength: 3 }).map((p) => p.join("")),
    modulus: fc.integer({ min: 1, max: 10 }),
    separator: fc.constantFrom(";", "", "-"),
  },
  { requiredKeys: ["action"] },
);

// ---------------------------------------------------------------------------
// Differential cases: payloads written here as text (not by the exporter's
// serializer, which is under test), with few names and values so series
// collide, repeat, get renamed into each other; every text-format feature the
// exporter must read as Prometheus does; rules of every action.

/** Families a payload draws from; dotted names need quoting (UTF-8 names). */
const diffFamilyName = fc.constantFrom("m", "n", "h", "s", "coder_x", "coder.dot", "a:b");
const diffLabelName = fc.constantFrom(
  "a",
  "b",
  "le",
  "quantile",
  "username",
  "http.route",
  "c:d",
  "_",
  "ü",
);
const diffLabelValue = fc.constantFrom(
  "x",
  "y",
  "",
  "1",
  "1.0",
  "+Inf",
  "0.5",
  "1e3",
  "Main",
  'q"\\',
  "x\ny",
  "ünï",
  "İßΣ",
  "a.b",
  "a\\tb",
);
const diffValue = fc.constantFrom(
  "1",
  "0",
  "-0",
  "2.5",
  "1e+06",
  "NaN",
  "+Inf",
  "-Inf",
  "inf",
  "1.7976931348623157e308",
  "5e-324",
  "0.1",
);
const diffTimestamp = fc.option(fc.constantFrom(1000, 2000, 0, 1700000000000), {
  freq: 6,
  nil: undefined,
});

const LEGACY_METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LEGACY_LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value or quoted name escaped for the text format (raw newline kept when `raw`). */
function escapeText(v: string, raw: boolean): string {
  return v.replace(/[\\"\n]/g, (c) => (c === "\n" ? (raw ? "\n" : "\\n") : `\\${c}`));
}

interface DiffSeries {
  suffix: string;
  labels: [string, string][];
  value: string;
  timestamp: number | undefined;
  /** Quote legacy-valid names too, keep raw newlines, reorder labels, blanks. */
  style: { quoteAll: boolean; rawNewline: boolean; spaces: boolean; reverse: boolean };
}

const style = fc.record({
  quoteAll: fc.boolean(),
  rawNewline: fc.boolean(),
  spaces: fc.constantFrom(false, false, false, true),
  reverse: fc.constantFrom(false, false, true),
});

/** One series line of family `name`. */
function seriesLine(name: string, s: DiffSeries): string {
  const full = name + s.suffix;
  const q = (n: string) => `"${escapeText(n, false)}"`;
  const labels = s.style.reverse ? [...s.labels].reverse() : s.labels;
  const parts = labels.map(
    ([n, v]) =>
      `${LEGACY_LABEL.test(n) && !s.style.quoteAll ? n : q(n)}=${s.style.spaces ? " " : ""}"${escapeText(v, s.style.rawNewline)}"`,
  );
  const sep = s.style.spaces ? ", " : ",";
  let line: string;
  if (LEGACY_METRIC.test(full) && !s.style.quoteAll) {
    line = parts.length > 0 || s.style.spaces ? `${full}{${parts.join(sep)}}` : full;
  } else {
    line = `{${[q(full), ...parts].join(sep)}}`;
  }
  line += ` ${s.value}`;
  if (s.timestamp !== undefined) line += ` ${s.timestamp}`;
  return `${line}\n`;
}

const diffSeries = (suffixes: readonly string[]) =>
  fc.record({
    suffix: fc.constantFrom(...suffixes),
    labels: fc.uniqueArray(fc.tuple(diffLabelName, diffLabelValue), {
      selector: ([n]) => n,
      maxLength: 3,
    }),
    value: diffValue,
    timestamp: diffTimestamp,
    style,
  });

const diffFamily = fc
  .constantFrom<MetricType>("counter", "gauge", "untyped", "histogram", "summary")
  .chain((type) =>
    fc.record({
      name: diffFamilyName,
      type: fc.constant(type),
      typed: fc.constantFrom(true, true, true, false),
      help: fc.option(
        fc.constantFrom("Help.", "Back\\\\slash and\\nnewline.", " two  spaces", ""),
        {
          nil: undefined,
        },
      ),
      series: fc.array(
        diffSeries(
          type === "histogram"
            ? ["_bucket", "_bucket", "_sum", "_count"]
            : type === "summary"
              ? ["", "_sum", "_count"]
              : [""],
        ),
        { maxLength: 6 },
      ),
      /** Repeat some series (same text, or the same labels in another order). */
      repeat: fc.array(fc.nat(5), { maxLength: 2 }),
    }),
  );

/** A whole payload as text. */
export const diffPayload = fc.array(diffFamily, { maxLength: 5 }).map((fams) => {
  let out = "";
  for (const f of fams) {
    const n = LEGACY_METRIC.test(f.name) ? f.name : `"${escapeText(f.name, false)}"`;
    if (f.help !== undefined) out += `# HELP ${n} ${f.help}\n`;
    if (f.typed) out += `# TYPE ${n} ${f.type}\n`;
    const series = [...f.series];
    for (const i of f.repeat) {
      const s = f.series[i];
      if (s !== undefined) series.push({ ...s, style: { ...s.style, reverse: !s.style.reverse } });
    }
    for (const s of series) out += seriesLine(f.name, s);
  }
  return out;
});

/** Rule pieces: those of `piece`, plus UTF-8 names and patterns about newlines and case. */
const diffPiece = fc.oneof(
  { weight: 3, arbitrary: piece },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "http.route",
      "c:d",
      "b",
      "coder.dot",
      "x.y",
      "(?i)MAIN",
      ".+",
      "(.*)_(.*)",
      "n",
      "m",
      "_sum",
      "ü",
      "$2",
    ),
  },
);

const diffSource = fc.constantFrom(
  "a",
  "b",
  "__name__",
  "le",
  "quantile",
  "username",
  "http.route",
  "c:d",
  "nope",
);

export const diffRule = fc.record(
  {
    action,
    source_labels: fc.array(diffSource, { maxLength: 3 }),
    regex: fc.array(diffPiece, { maxLength: 3 }).map((p) => p.join("")),
    target_label: fc.oneof(
      fc.array(diffPiece, { minLength: 1, maxLength: 2 }).map((p) => p.join("")),
      diffSource,
    ),
    replacement: fc.array(diffPiece, { maxLength: 3 }).map((p) => p.join("")),
    modulus: fc.integer({ min: 1, max: 10 }),
    separator: fc.constantFrom(";", "", "-"),
  },
  { requiredKeys: ["action"] },
);

const diffRegex = fc.constantFrom(
  "(.*)",
  ".*",
  ".+",
  "",
  "x",
  "x|y",
  "m|n",
  "(.+)_(.+)",
  "(?i)main",
  "coder_(.*)",
  "(.*)_sum",
  "(.*)_(bucket|count)",
  "__name__|a",
  "a.*",
  "([a-z]+)",
  "\\d+",
  "(.)(.*)",
  "x.y",
  "1.*",
  "(?P<name>.*)",
  "[^a]*",
  "ü|ß|İßΣ",
  "http\\.(.*)",
  "(.*);(.*)",
  "le|quantile",
  "coder\\.(.*)",
);
const diffTarget = fc.constantFrom(
  "a",
  "b",
  "x",
  "__name__",
  "le",
  "quantile",
  "http.route",
  "c:d",
  "$1",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Prometheus's replacement syntax
  "${1}_x",
  "$2",
  "ü",
);
const diffReplacement = fc.constantFrom(
  "$1",
  "",
  "const",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Prometheus's replacement syntax
  "${2}",
  "$1.$2",
  "$2_$1",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Prometheus's replacement syntax
  "${name}",
  "1",
  "1.0",
  "coder_$1",
  "m",
  "x\ny",
  "$$1",
);
const sources = fc.array(diffSource, { minLength: 1, maxLength: 3 });

/** A rule valid for its action, with the fields that action takes (few invalid ones). */
export const validRule = fc.oneof(
  fc.record(
    {
      action: fc.constant("replace"),
      source_labels: sources,
      regex: diffRegex,
      target_label: diffTarget,
      replacement: diffReplacement,
      separator: fc.constantFrom(";", "", "/"),
    },
    { requiredKeys: ["action", "target_label"] },
  ),
  fc.record(
    { action: fc.constantFrom("keep", "drop"), source_labels: sources, regex: diffRegex },
    { requiredKeys: ["action"] },
  ),
  fc.record({
    action: fc.constantFrom("keepequal", "dropequal"),
    source_labels: sources,
    target_label: diffTarget,
  }),
  fc.record({
    action: fc.constant("hashmod"),
    source_labels: sources,
    target_label: diffTarget,
    modulus: fc.integer({ min: 1, max: 10 }),
  }),
  fc.record(
    { action: fc.constant("labelmap"), regex: diffRegex, replacement: diffReplacement },
    { requiredKeys: ["action"] },
  ),
  fc.record(
    { action: fc.constantFrom("labeldrop", "labelkeep"), regex: diffRegex },
    { requiredKeys: ["action"] },
  ),
  fc.record({
    action: fc.constantFrom("lowercase", "uppercase"),
    source_labels: sources,
    target_label: diffTarget,
  }),
);

/** A differential case: rules (mostly valid ones) and a payload. */
export const diffCase = fc.record({
  rules: fc.array(
    fc.oneof({ weight: 9, arbitrary: validRule }, { weight: 1, arbitrary: diffRule }),
    {
      maxLength: 4,
    },
  ),
  payload: diffPayload,
});

/** A valid payload with a few characters inserted, removed or replaced: for the parser. */
export const mutatedPayload = fc
  .tuple(
    diffPayload,
    fc.array(
      fc.tuple(
        fc.nat(),
        // No NUL: Prometheus's lexer skips it in some places and ends the
        // input in others; the case table has the NUL cases the exporter
        // follows (the README lists those it does not).
        fc.constantFrom("{", "}", '"', "\\", "=", ",", " ", "\n", "#", "a", "1", "e", "\t", "."),
        fc.boolean(),
      ),
      { minLength: 1, maxLength: 3 },
    ),
  )
  .map(([text, edits]) => {
    let s = text;
    for (const [at, ch, insert] of edits) {
      const i = at % (s.length + 1);
      s = s.slice(0, i) + ch + s.slice(insert ? i : i + 1);
    }
    return s;
  });

// ---------------------------------------------------------------------------
// Regexes: RE2 syntax and matching (re2js against Go's regexp), through
// keep and replace rules on values from all over Unicode.

const regexToken = fc.constantFrom(
  "a",
  "b",
  "x",
  ".",
  "*",
  "+",
  "?",
  "*?",
  "|",
  "(",
  ")",
  "[",
  "]",
  "[^a]",
  "[a-c]",
  "^",
  "$",
  "\\d",
  "\\w",
  "\\s",
  "\\S",
  "\\pL",
  "\\p{Greek}",
  "\\PL",
  "(?i)",
  "(?s)",
  "(?m)",
  "(?U)",
  "(?-s)",
  "{2}",
  "{1,3}",
  "{2,}",
  "{1001}",
  "\\Q.\\E",
  "[[:alpha:]]",
  "[[:^digit:]]",
  "\\b",
  "\\B",
  "\\A",
  "\\z",
  "\\x{41}",
  "\\x41",
  "\\141",
  "\\C",
  "\\1",
  "(?P<n>",
  "(?<n>",
  "(?:",
  "\\",
  "\\.",
  "\\n",
  "ß",
  "K",
  "ſ",
  "İ",
  "σ",
  "😀",
  "\n",
);

const regexValue = fc.constantFrom(
  "a",
  "ab",
  "",
  "x\ny",
  "A",
  "ß",
  "SS",
  "K",
  "k",
  "ſ",
  "s",
  "İ",
  "i",
  "Σ",
  "ς",
  "σ",
  "😀",
  "a.b",
  "123",
  "aaa",
  "αβγ",
  " \t",
  "\\",
);

/** Rules around one generated regex, and a payload of values to match. */
export const regexCase = fc
  .tuple(
    fc.array(regexToken, { minLength: 1, maxLength: 6 }).map((t) => t.join("")),
    fc.array(regexValue, { minLength: 1, maxLength: 6 }),
    fc.constantFrom("keep", "replace", "labelmap"),
  )
  .map(([regex, values, kind]) => {
    const rules =
      kind === "keep"
        ? [{ source_labels: ["a"], regex, action: "keep" }]
        : kind === "replace"
          ? [{ source_labels: ["a"], regex, target_label: "m", replacement: "<$0|$1|$n>" }]
          : [{ regex, replacement: "l_$0", action: "labelmap" }];
    const payload = values
      .map(
        (v, i) =>
          `m{a="${v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}",i="${i}"} ${i}\n`,
      )
      .join("");
    return { rules, payload };
  });
