import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planExporterConfig } from "../../../controller/desired/exporter-config.ts";
import {
  parseExporterConfig,
  validateExporterConfig,
} from "../../../controller/exporter/config/config.ts";

describe("parseExporterConfig: accepted forms", () => {
  it("a plain list of metric_relabel_configs rules", () => {
    const r = parseExporterConfig("- source_labels: [__name__]\n  regex: go_.*\n  action: drop\n");
    assert.ok(r.ok);
    assert.equal(r.config.relabel.length, 1);
    assert.equal(r.config.relabel[0]!.action, "drop");
  });
  it("an empty file is the identity configuration", () => {
    const r = parseExporterConfig("");
    assert.ok(r.ok);
    assert.equal(r.config.relabel.length, 0);
    assert.equal(r.config.seriesLimit, 0);
  });
  it("the mapping form with every section", () => {
    const r = parseExporterConfig(`
metric_relabel_configs:
  - source_labels: [__name__]
    regex: go_.*
    action: drop
drop_metrics: ["process_*", "coderd_db_query_counts_total"]
aggregate:
  - metrics: ["coderd_agentstats_*"]
    op: max
    without: [username, workspace_name]
pii:
  hash_labels: [username]
  drop_labels: [owner_email]
  hash_length: 12
series_limit: 1000
presets: [drop_deprecated, per_template]
`);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const c = r.config;
    assert.ok(c.dropMetrics.matches("process_cpu_seconds_total"));
    assert.ok(
      c.dropMetrics.matches("coderd_api_workspace_latest_build_total"),
      "preset drop_deprecated",
    );
    assert.ok(!c.dropMetrics.matches("coderd_api_workspace_latest_build"));
    assert.equal(c.aggregate[0]!.op, "max");
    assert.deepEqual(c.aggregate[0]!.without, ["username", "workspace_name"]);
    assert.ok(c.aggregate.length > 1, "per_template rules appended after the user's");
    assert.deepEqual(c.pii, {
      hashLabels: ["username"],
      dropLabels: ["owner_email"],
      hashLength: 12,
    });
    assert.equal(c.seriesLimit, 1000);
  });
  it("counter_mode per aggregate rule (default stateful) and counter_state_ttl (default 15m)", () => {
    const r = parseExporterConfig(`
aggregate:
  - {metrics: [a], counter_mode: stateless}
  - {metrics: [b]}
counter_state_ttl: 1h30m
`);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.equal(r.config.aggregate[0]!.counterMode, "stateless");
    assert.equal(r.config.aggregate[1]!.counterMode, "stateful");
    assert.equal(r.config.counterStateTtlMs, 90 * 60_000);
    const d = parseExporterConfig("presets: [per_template]\n");
    assert.ok(d.ok);
    assert.equal(d.config.counterStateTtlMs, 15 * 60_000);
    assert.ok(d.config.aggregate.every((rule) => rule.counterMode === "stateful"));
  });
  it("rule keys: equal for equal rules, different when anything that aggregates differs", () => {
    const key = (rule: string) => {
      const r = parseExporterConfig(`aggregate: [${rule}]\n`);
      assert.ok(r.ok);
      return r.config.aggregate[0]!.key;
    };
    assert.equal(key("{metrics: [a], without: [w]}"), key("{metrics: [a], without: [w], op: sum}"));
    assert.notEqual(key("{metrics: [a], without: [w]}"), key("{metrics: [a], without: [v]}"));
    assert.notEqual(key("{metrics: [a], by: [w]}"), key("{metrics: [a], without: [w]}"));
    assert.notEqual(key("{metrics: [a]}"), key("{metrics: [a], counter_mode: stateless}"));
  });
});

describe("parseExporterConfig: errors are values with a path", () => {
  const cases: { name: string; text: string; path: string; message: RegExp }[] = [
    {
      name: "invalid RE2 in the third rule",
      text: `metric_relabel_configs:
  - {source_labels: [a], target_label: b}
  - {action: drop, regex: "x"}
  - {action: drop, regex: "(?<!x)y"}
`,
      path: "metric_relabel_configs[2].regex",
      message: /invalid RE2/,
    },
    {
      name: "list form paths start at the index",
      text: "- action: hashmod\n  source_labels: [a]\n  target_label: b\n",
      path: "[0].modulus",
      message: /non-zero modulus/,
    },
    { name: "YAML syntax", text: "a: [\n", path: "", message: /YAML syntax error/ },
    {
      name: "not a list or mapping",
      text: "42\n",
      path: "",
      message: /list of relabel rules or a mapping/,
    },
    {
      name: "unknown top-level key with hint",
      text: "dropMetrics: [a]\n",
      path: "dropMetrics",
      message: /did you mean "drop_metrics"/,
    },
    {
      name: "bad glob",
      text: "drop_metrics: ['a.b']\n",
      path: "drop_metrics[0]",
      message: /not a metric name or glob/,
    },
    {
      name: "bad aggregate op",
      text: "aggregate: [{metrics: [a], op: avg}]\n",
      path: "aggregate[0].op",
      message: /one of sum, max, min, count/,
    },
    {
      name: "aggregate by and without",
      text: "aggregate: [{metrics: [a], by: [x], without: [y]}]\n",
      path: "aggregate[0]",
      message: /either 'by' or 'without'/,
    },
    {
      name: "aggregate without metrics",
      text: "aggregate: [{by: [x]}]\n",
      path: "aggregate[0].metrics",
      message: /at least one/,
    },
    {
      // Label names are UTF-8 (x-y is one); only "" and __name__ are not.
      name: "aggregate bad label",
      text: 'aggregate: [{metrics: [a], by: [""]}]\n',
      path: "aggregate[0].by[0]",
      message: /not a valid label name/,
    },
    {
      name: "bad counter_mode",
      text: "aggregate: [{metrics: [a], counter_mode: reset}]\n",
      path: "aggregate[0].counter_mode",
      message: /one of stateful, stateless/,
    },
    {
      name: "counter_state_ttl not a duration",
      text: "counter_state_ttl: 5 minutes\n",
      path: "counter_state_ttl",
      message: /positive duration/,
    },
    {
      name: "counter_state_ttl zero",
      text: "counter_state_ttl: 0s\n",
      path: "counter_state_ttl",
      message: /positive duration/,
    },
    {
      name: "pii hash_length",
      text: "pii: {hash_labels: [u], hash_length: 4}\n",
      path: "pii.hash_length",
      message: /8 to 64/,
    },
    {
      name: "pii overlap",
      text: "pii: {hash_labels: [u], drop_labels: [u]}\n",
      path: "pii",
      message: /both/,
    },
    {
      name: "series_limit",
      text: "series_limit: -1\n",
      path: "series_limit",
      message: /non-negative/,
    },
    {
      name: "unknown preset",
      text: "presets: [everything]\n",
      path: "presets[0]",
      message: /unknown preset "everything"/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = parseExporterConfig(c.text);
      assert.equal(r.ok, false);
      if (r.ok) return;
      const e = r.errors.find((x) => x.path === c.path);
      assert.ok(e, `no error at "${c.path}": ${JSON.stringify(r.errors)}`);
      assert.match(e.message, c.message);
    });
  }
  it("reports every bad rule, not just the first", () => {
    const r = validateExporterConfig([
      { action: "nope" },
      { source_labels: ["a"] },
      { action: "drop" },
    ]);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(
      r.errors.map((e) => e.path),
      ["[0].action", "[1].target_label"],
    );
  });
});

describe("example files in test/fixtures/exporter", () => {
  for (const name of ["example.yaml", "rules-list.yaml"]) {
    it(`${name} is valid`, async () => {
      const { readFile } = await import("node:fs/promises");
      const text = await readFile(
        new URL(`../../fixtures/exporter/${name}`, import.meta.url),
        "utf8",
      );
      const r = parseExporterConfig(text);
      assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    });
  }
});

describe("the CR's exporter.config as the exporter's file", () => {
  it("counterMode and counterStateTTL become counter_mode and counter_state_ttl", () => {
    const plan = planExporterConfig({
      aggregate: [{ metrics: ["a"], op: "sum", without: ["w"], counterMode: "stateless" }],
      counterStateTTL: "30m",
    });
    assert.ok(plan.ok, !plan.ok ? plan.message : "");
    const r = parseExporterConfig(plan.text);
    assert.ok(r.ok);
    assert.equal(r.config.aggregate[0]!.counterMode, "stateless");
    assert.equal(r.config.counterStateTtlMs, 30 * 60_000);
  });
  it("errors name the CR's fields", () => {
    const plan = planExporterConfig({ counterStateTTL: "0s" });
    assert.ok(!plan.ok);
    assert.match(plan.message, /^spec\.exporter\.config\.counterStateTTL: /);
  });
});
