// biome-ignore-all lint/suspicious/noTemplateCurlyInString: relabel templates use Go-style ${1}, not JS template strings
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import {
  compileRelabelRule,
  type RelabelRule,
  relabel,
} from "../../../controller/exporter/relabel/relabel.ts";
import { labelMap, sample } from "./helpers.ts";

function rules(raw: unknown[]): RelabelRule[] {
  return raw.map((r, i) => {
    const c = compileRelabelRule(r, `[${i}]`);
    if (!c.ok) throw new Error(JSON.stringify(c.errors));
    return c.rule;
  });
}

interface Case {
  name: string;
  input: Record<string, string>;
  rules: unknown[];
  /** Labels after relabeling (with __name__), or "drop". */
  want: Record<string, string> | "drop" | "invalid";
}

function run(c: Case) {
  const { __name__: name = "m", ...labels } = c.input;
  const s = sample(name, labels);
  const stats = { invalidTargets: 0 };
  const outcome = relabel(s, rules(c.rules), stats);
  if (c.want === "drop" || c.want === "invalid") assert.equal(outcome, c.want);
  else {
    assert.equal(outcome, "keep");
    assert.deepStrictEqual(labelMap(s), c.want);
  }
}

function table(title: string, cases: Case[]) {
  describe(title, () => {
    for (const c of cases) it(c.name, () => run(c));
  });
}

/** hashmod computed independently: md5, last 8 bytes big-endian, modulo. */
function md5mod(v: string, m: bigint): string {
  const d = createHash("md5").update(v).digest();
  let x = 0n;
  for (let i = 8; i < 16; i++) x = (x << 8n) | BigInt(d[i]!);
  return (x % m).toString();
}

table("replace", [
  {
    name: "defaults copy the source into the target",
    input: { __name__: "m", a: "foo" },
    rules: [{ source_labels: ["a"], target_label: "b" }],
    want: { __name__: "m", a: "foo", b: "foo" },
  },
  {
    name: "regex is fully anchored (f does not match foo)",
    input: { __name__: "m", a: "foo" },
    rules: [{ source_labels: ["a"], regex: "f", target_label: "b", replacement: "bar" }],
    want: { __name__: "m", a: "foo" },
  },
  {
    name: "anchoring also applies around alternations",
    input: { __name__: "m", a: "xfoo" },
    rules: [{ source_labels: ["a"], regex: "foo|bar", target_label: "b", replacement: "hit" }],
    want: { __name__: "m", a: "xfoo" },
  },
  {
    name: "groups, ${1} and ${name}",
    input: { __name__: "m", a: "foo-bar" },
    rules: [
      {
        source_labels: ["a"],
        regex: "(?P<first>[a-z]+)-([a-z]+)",
        target_label: "b",
        replacement: "${2}_${first}_$1",
      },
    ],
    want: { __name__: "m", a: "foo-bar", b: "bar_foo_foo" },
  },
  {
    name: "$1x is the group named 1x (empty), as in Go's Expand",
    input: { __name__: "m", a: "foo" },
    rules: [{ source_labels: ["a"], regex: "(f)oo", target_label: "b", replacement: "$1x|${1}x" }],
    want: { __name__: "m", a: "foo", b: "|fx" },
  },
  {
    name: "$$ is a literal dollar and a lone $ stays",
    input: { __name__: "m", a: "foo" },
    rules: [{ source_labels: ["a"], target_label: "b", replacement: "$$1 $ $" }],
    want: { __name__: "m", a: "foo", b: "$1 $ $" },
  },
  {
    name: "multiple sources joined with the separator",
    input: { __name__: "m", a: "x", b: "y" },
    rules: [{ source_labels: ["a", "b", "missing"], separator: "/", target_label: "c" }],
    want: { __name__: "m", a: "x", b: "y", c: "x/y/" },
  },
  {
    name: "empty replacement result deletes the target label",
    input: { __name__: "m", a: "foo", b: "bar" },
    rules: [{ source_labels: ["a"], regex: "foo", target_label: "b", replacement: "" }],
    want: { __name__: "m", a: "foo" },
  },
  {
    name: "invalid group ${3} expands to empty, deleting the target (Prometheus's (f).* → $1/$2 case)",
    input: { __name__: "m", a: "foo" },
    rules: [{ source_labels: ["a"], regex: "(f).*", target_label: "$1", replacement: "$2" }],
    want: { __name__: "m", a: "foo" },
  },
  {
    name: "target label from a group",
    input: { __name__: "m", a: "some-name-value" },
    rules: [
      {
        source_labels: ["a"],
        regex: "some-([^-]+)-([^,]+)",
        target_label: "${1}",
        replacement: "${2}",
      },
    ],
    want: { __name__: "m", a: "some-name-value", name: "value" },
  },
  {
    // Prometheus 3 validates names as UTF-8: "2" is a valid label name.
    name: "a target expanding to a digit is a valid (UTF-8) label name",
    input: { __name__: "m", a: "some-2-value" },
    rules: [
      {
        source_labels: ["a"],
        regex: "some-([^-]+)-([^,]+)",
        target_label: "${1}",
        replacement: "${2}",
      },
    ],
    want: { __name__: "m", a: "some-2-value", "2": "value" },
  },
  {
    name: "a target expanding to nothing is skipped",
    input: { __name__: "m", a: "foo" },
    rules: [{ source_labels: ["a"], regex: "(x?)foo", target_label: "${1}", replacement: "y" }],
    want: { __name__: "m", a: "foo" },
  },
  {
    name: "fast path: empty source with default regex sets the replacement",
    input: { __name__: "m" },
    rules: [{ source_labels: ["missing"], target_label: "env", replacement: "prod" }],
    want: { __name__: "m", env: "prod" },
  },
  {
    name: "renaming via __name__",
    input: { __name__: "coderd_agentstats_rx_bytes", a: "1" },
    rules: [
      {
        source_labels: ["__name__"],
        regex: "coderd_agentstats_(.*)",
        target_label: "__name__",
        replacement: "coder_agent_$1",
      },
    ],
    want: { __name__: "coder_agent_rx_bytes", a: "1" },
  },
  {
    name: "deleting __name__ makes the series invalid",
    input: { __name__: "m", a: "1" },
    rules: [{ source_labels: ["a"], target_label: "__name__", replacement: "" }],
    want: "invalid",
  },
  {
    // Prometheus 3 compiles relabel regexes as ^(?s:…)$ (Prometheus 2 used
    // ^(?:…)$, where . stopped at a newline).
    name: "regex . matches a newline in a value",
    input: { __name__: "m", a: "x\ny" },
    rules: [{ source_labels: ["a"], regex: "x.y", target_label: "b", replacement: "hit" }],
    want: { __name__: "m", a: "x\ny", b: "hit" },
  },
  {
    name: "the default regex (.*) takes a value with a newline whole",
    input: { __name__: "m", a: "x\ny" },
    rules: [{ source_labels: ["a"], target_label: "b" }],
    want: { __name__: "m", a: "x\ny", b: "x\ny" },
  },
  {
    name: "an empty input value is no label: a rule cannot see or copy it",
    input: { __name__: "m", a: "", b: "1" },
    rules: [{ regex: "a", replacement: "c", action: "labelmap" }],
    want: { __name__: "m", b: "1" },
  },
]);

table("keep and drop", [
  {
    name: "drop on match",
    input: { __name__: "go_goroutines" },
    rules: [{ source_labels: ["__name__"], regex: "go_.*", action: "drop" }],
    want: "drop",
  },
  {
    name: "drop: no match keeps",
    input: { __name__: "coderd_x" },
    rules: [{ source_labels: ["__name__"], regex: "go_.*", action: "drop" }],
    want: { __name__: "coderd_x" },
  },
  {
    name: "keep on match",
    input: { __name__: "coderd_x" },
    rules: [{ source_labels: ["__name__"], regex: "coderd_.*", action: "keep" }],
    want: { __name__: "coderd_x" },
  },
  {
    name: "keep: anchored, partial match drops",
    input: { __name__: "xcoderd_x" },
    rules: [{ source_labels: ["__name__"], regex: "coderd_.*", action: "KEEP" }],
    want: "drop",
  },
  {
    name: "keep with the empty regex keeps only empty values",
    input: { __name__: "m" },
    rules: [{ source_labels: ["a"], regex: "", action: "keep" }],
    want: { __name__: "m" },
  },
]);

table("keepequal and dropequal", [
  {
    name: "keepequal keeps when equal",
    input: { __name__: "m", a: "1", b: "1" },
    rules: [{ source_labels: ["a"], target_label: "b", action: "keepequal" }],
    want: { __name__: "m", a: "1", b: "1" },
  },
  {
    name: "keepequal drops when different",
    input: { __name__: "m", a: "1", b: "2" },
    rules: [{ source_labels: ["a"], target_label: "b", action: "keepequal" }],
    want: "drop",
  },
  {
    name: "dropequal drops when equal (missing == empty)",
    input: { __name__: "m" },
    rules: [{ source_labels: ["a"], target_label: "b", action: "dropequal" }],
    want: "drop",
  },
  {
    name: "dropequal keeps when different",
    input: { __name__: "m", a: "1", b: "2" },
    rules: [{ source_labels: ["a"], target_label: "b", action: "dropequal" }],
    want: { __name__: "m", a: "1", b: "2" },
  },
]);

table("hashmod", [
  {
    name: "Prometheus relabel_test.go: baz mod 1000 = 976",
    input: { __name__: "m", a: "foo", b: "bar", c: "baz" },
    rules: [{ source_labels: ["c"], target_label: "d", modulus: 1000, action: "hashmod" }],
    want: { __name__: "m", a: "foo", b: "bar", c: "baz", d: "976" },
  },
  {
    name: "Prometheus relabel_test.go: foo\\nbar mod 1000 = 734",
    input: { __name__: "m", a: "foo\nbar" },
    rules: [{ source_labels: ["a"], target_label: "b", modulus: 1000, action: "hashmod" }],
    want: { __name__: "m", a: "foo\nbar", b: "734" },
  },
  ...["ws-00001", "user@example.com", "", "ünïcødé", "x".repeat(300)].map(
    (v): Case => ({
      name: `matches an independent md5 computation for ${JSON.stringify(v.slice(0, 20))}`,
      input: { __name__: "m", a: v, b: "z" },
      rules: [
        {
          source_labels: ["a", "b"],
          target_label: "shard",
          modulus: 2 ** 40 + 7,
          action: "hashmod",
        },
      ],
      // An empty value is no label (removed before the rules, as in Prometheus).
      want: {
        __name__: "m",
        ...(v === "" ? {} : { a: v }),
        b: "z",
        shard: md5mod(`${v};z`, 2n ** 40n + 7n),
      },
    }),
  ),
]);

table("labelmap", [
  {
    name: "copies matching labels (Prometheus's bar_${1} case)",
    input: { __name__: "m", a: "foo", b1: "bar", b2: "baz" },
    rules: [{ regex: "(b.*)", replacement: "bar_${1}", action: "labelmap" }],
    want: { __name__: "m", a: "foo", b1: "bar", b2: "baz", bar_b1: "bar", bar_b2: "baz" },
  },
  {
    name: "strips a prefix",
    input: { __name__: "m", __meta_x: "1", a: "2" },
    rules: [{ regex: "__meta_(.+)", action: "labelmap" }],
    want: { __name__: "m", __meta_x: "1", x: "1", a: "2" },
  },
  {
    // Prometheus sets labelmap's result unchecked: an empty name is an
    // invalid series, which fails the scrape.
    name: "an empty resulting name makes the series invalid",
    input: { __name__: "m", x: "1" },
    rules: [{ regex: "(.*)x", replacement: "${1}", action: "labelmap" }],
    want: "invalid",
  },
  {
    name: "targets are visited in Prometheus's order: scraped labels sorted, then added ones",
    input: { __name__: "m", xb: "1", xa: "2" },
    rules: [
      { target_label: "x0", replacement: "added" },
      { regex: "x.", replacement: "y", action: "labelmap" },
    ],
    want: { __name__: "m", xb: "1", xa: "2", x0: "added", y: "added" },
  },
]);

table("labeldrop and labelkeep", [
  {
    name: "labeldrop removes matching names",
    input: { __name__: "m", username: "u", workspace_name: "w", template_name: "t" },
    rules: [{ regex: "username|workspace_.*", action: "labeldrop" }],
    want: { __name__: "m", template_name: "t" },
  },
  {
    name: "labelkeep keeps matching names",
    input: { __name__: "m", username: "u", template_name: "t" },
    rules: [{ regex: "__name__|template_name", action: "labelkeep" }],
    want: { __name__: "m", template_name: "t" },
  },
  {
    name: "labelkeep without __name__ removes the name: invalid series",
    input: { __name__: "m", template_name: "t" },
    rules: [{ regex: "template_name", action: "labelkeep" }],
    want: "invalid",
  },
]);

table("lowercase and uppercase", [
  {
    name: "lowercase into a new label",
    input: { __name__: "m", a: "FoO" },
    rules: [{ source_labels: ["a"], target_label: "b", action: "lowercase" }],
    want: { __name__: "m", a: "FoO", b: "foo" },
  },
  {
    name: "uppercase in place, joined sources",
    input: { __name__: "m", a: "x", b: "y" },
    rules: [{ source_labels: ["a", "b"], target_label: "a", action: "uppercase" }],
    want: { __name__: "m", a: "X;Y", b: "y" },
  },
  {
    name: "lowercase of an empty source deletes the target",
    input: { __name__: "m", b: "y" },
    rules: [{ source_labels: ["a"], target_label: "b", action: "lowercase" }],
    want: { __name__: "m" },
  },
]);

describe("validation (Prometheus's Config.Validate)", () => {
  const cases: { name: string; raw: unknown; path: string; message: RegExp }[] = [
    {
      name: "replace needs target_label",
      raw: { source_labels: ["a"] },
      path: "[0].target_label",
      message: /requires 'target_label'/,
    },
    {
      name: "hashmod needs modulus",
      raw: { action: "hashmod", source_labels: ["a"], target_label: "b" },
      path: "[0].modulus",
      message: /non-zero modulus/,
    },
    {
      name: "unknown action",
      raw: { action: "rename" },
      path: "[0].action",
      message: /unknown relabel action "rename"/,
    },
    { name: "empty action", raw: { action: "" }, path: "[0].action", message: /cannot be empty/ },
    {
      name: "invalid RE2",
      raw: { action: "drop", regex: "a(b" },
      path: "[0].regex",
      message: /invalid RE2/,
    },
    {
      name: "lookahead is not RE2",
      raw: { action: "drop", regex: "a(?=b)" },
      path: "[0].regex",
      message: /invalid RE2/,
    },
    {
      // Names are UTF-8 in Prometheus 3: "a-b" is valid, only "" is not.
      name: "empty source label name",
      raw: { action: "drop", source_labels: [""] },
      path: "[0].source_labels[0]",
      message: /not a valid label name/,
    },
    {
      name: "invalid target_label for lowercase (empty)",
      raw: { action: "lowercase", source_labels: ["a"], target_label: "" },
      path: "[0].target_label",
      message: /requires 'target_label'/,
    },
    {
      name: "labeldrop with source_labels",
      raw: { action: "labeldrop", regex: "a", source_labels: ["a"] },
      path: "[0]",
      message: /requires only 'regex'/,
    },
    {
      name: "labelkeep with replacement",
      raw: { action: "labelkeep", regex: "a", replacement: "x" },
      path: "[0]",
      message: /requires only 'regex'/,
    },
    {
      name: "keepequal with regex",
      raw: { action: "keepequal", source_labels: ["a"], target_label: "b", regex: "x" },
      path: "[0]",
      message: /requires only 'source_labels'/,
    },
    {
      name: "lowercase with replacement",
      raw: { action: "lowercase", source_labels: ["a"], target_label: "b", replacement: "x" },
      path: "[0].replacement",
      message: /can not be set/,
    },
    {
      name: "labelmap with an empty replacement",
      raw: { action: "labelmap", replacement: "" },
      path: "[0].replacement",
      message: /invalid 'replacement'/,
    },
    {
      name: "unknown key with camelCase hint",
      raw: { sourceLabels: ["a"], action: "drop" },
      path: "[0].sourceLabels",
      message: /did you mean "source_labels"/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = compileRelabelRule(c.raw, "[0]");
      assert.equal(r.ok, false);
      if (r.ok) return;
      const e = r.errors.find((x) => x.path === c.path);
      assert.ok(e, `no error at ${c.path}: ${JSON.stringify(r.errors)}`);
      assert.match(e.message, c.message);
    });
  }
  it("accepts UTF-8 names where Prometheus 3 does", () => {
    for (const raw of [
      { source_labels: ["http.route", "a-b"], target_label: "c:d" },
      { source_labels: ["a"], target_label: "${1}-x" },
      { action: "labelmap", regex: "(.*)", replacement: "copy.$1" },
      { action: "hashmod", source_labels: ["a"], target_label: "h.x", modulus: 2 },
    ]) {
      const r = compileRelabelRule(raw, "[0]");
      assert.ok(r.ok, `${JSON.stringify(raw)}: ${JSON.stringify(r.ok ? "" : r.errors)}`);
    }
  });
  it("accepts an explicit default separator/replacement for keepequal", () => {
    assert.ok(
      compileRelabelRule(
        {
          action: "keepequal",
          source_labels: ["a"],
          target_label: "b",
          separator: ";",
          replacement: "$1",
        },
        "[0]",
      ).ok,
    );
  });
});

describe("regex safety", () => {
  it("a ReDoS pattern on a long input completes fast (RE2, linear time)", () => {
    const [rule] = rules([{ source_labels: ["a"], regex: "(a+)+$", action: "drop" }]);
    const s = sample("m", { a: `${"a".repeat(50_000)}!` });
    const t = performance.now();
    assert.equal(relabel(s, [rule!], { invalidTargets: 0 }), "keep");
    assert.ok(performance.now() - t < 2000, `took ${performance.now() - t}ms`);
  });
});
