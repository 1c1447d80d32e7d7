// The chart's PrometheusRule and Grafana dashboards: every expression parses
// (promtool), the alerts behave as their promtool unit tests say, every metric
// they use is one Coder (or coder-metrics) really exports in the Coder releases
// they claim, families every coderd replica serves alike are aggregated with
// max, and every alert has a runbook in the chart README.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { stringify } from "yaml";
import {
  CATALOG,
  type CatalogMetric,
  presentIn,
  releaseRank,
  VERSIONS,
} from "../../../controller/coder/catalog.ts";
import { SelfMetrics } from "../../../controller/exporter/self-metrics.ts";
import { createControllerMetrics } from "../../../controller/operator/metrics.ts";
import { chartDir, find, type KubeObject, renderChart } from "../../support/helm.ts";

function promtool(args: string[], cwd: string): { status: number; output: string } {
  const result = spawnSync("promtool", args, { cwd, encoding: "utf8" });
  if (result.error)
    throw new Error(`promtool not found (run \`make system-deps\`): ${result.error.message}`);
  return { status: result.status ?? -1, output: result.stdout + result.stderr };
}

const work = mkdtempSync(join(tmpdir(), "coder-metrics-rules-"));
after(() => rmSync(work, { recursive: true, force: true }));

interface RuleGroup {
  name: string;
  rules: { alert?: string; record?: string; expr: string; labels?: Record<string, string> }[];
}

function prometheusRule(values: Record<string, unknown> = {}): KubeObject {
  const objects = renderChart({ values: { prometheusRule: { enabled: true, ...values } } });
  const rules = find(objects, "PrometheusRule");
  assert.equal(rules.length, 1);
  return rules[0]!;
}

const groups = prometheusRule().spec.groups as RuleGroup[];
const alertNames = groups.flatMap((g) => g.rules.map((r) => r.alert ?? ""));

// Names a query may use: Coder's catalogue (with histogram series suffixes), the
// exporter's and controller's self-metrics, and Prometheus's own `up`.
const histogramSuffixes = ["_bucket", "_sum", "_count"];
const known = new Set<string>(["up"]);
for (const m of CATALOG) {
  known.add(m.name);
  if (m.type === "histogram" || m.type === "summary")
    for (const s of histogramSuffixes) known.add(m.name + s);
}
const selfRegistries = [
  new SelfMetrics({ defaultMetrics: false }).registry,
  createControllerMetrics().registry,
];
for (const registry of selfRegistries)
  for (const m of await registry.getMetricsAsJSON()) {
    known.add(m.name);
    if (String(m.type) === "histogram") for (const s of histogramSuffixes) known.add(m.name + s);
  }

/** Metric names in a PromQL expression: identifiers that are not functions, keywords or label names. */
function metricNames(expr: string): string[] {
  const simplified = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "{}")
    .replace(/\[[^\]]*\]/g, "[]")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const keywords = new Set([
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "group_left",
    "group_right",
    "inf",
    "nan",
  ]);
  const names: string[] = [];
  for (const match of simplified.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = simplified.slice(match.index + match[0].length);
    if (/^\s*\(/.test(rest) || keywords.has(match[0].toLowerCase())) continue;
    names.push(match[0]);
  }
  return names;
}

// Coder releases: a query may use a family every covered release serves and
// that older releases back to the oldest extended-support one (v2.29) had;
// one that needs a newer release says so ("Coder v2.31 or later") in the panel's
// description or the alert's coder_versions annotation, and is then checked
// against the releases from that one on.
const OLDEST_SUPPORTED = "v2.29";
const catalogByName = new Map<string, CatalogMetric>();
for (const m of CATALOG) {
  catalogByName.set(m.name, m);
  if (m.type === "histogram" || m.type === "summary")
    for (const s of histogramSuffixes) catalogByName.set(m.name + s, m);
}

/** Problems with the Coder releases a query's families need, given the text that claims them. */
function versionProblems(where: string, expr: string, claimText: string): string[] {
  const families = [...new Set(metricNames(expr).map((n) => catalogByName.get(n)))].filter(
    (m): m is CatalogMetric => m !== undefined,
  );
  const claim = /Coder (v\d+\.\d+) or later/.exec(claimText)?.[1];
  const problems: string[] = [];
  const newest = families
    .filter((m) => releaseRank(m.since) > releaseRank(OLDEST_SUPPORTED))
    .sort((a, b) => releaseRank(b.since) - releaseRank(a.since))[0];
  if (newest !== undefined) {
    if (newest.since.startsWith("<="))
      problems.push(`${where}: ${newest.name} has no pinned first release (${newest.since})`);
    else if (claim !== newest.since)
      problems.push(
        `${where} uses ${newest.name} (since ${newest.since}) but says ${claim ? `Coder ${claim} or later` : "nothing"} (want "Coder ${newest.since} or later")`,
      );
  }
  const from = claim !== undefined ? releaseRank(claim) : Number.NEGATIVE_INFINITY;
  for (const m of families)
    for (const v of VERSIONS)
      if (releaseRank(v) >= from && !presentIn(m, v))
        problems.push(`${where} uses ${m.name}, which Coder ${v} does not serve`);
  return problems;
}

/** Families every replica computes from the database are de-duplicated with max before any sum. */
function replicaProblems(where: string, expr: string): string[] {
  const same = metricNames(expr).filter((n) => catalogByName.get(n)?.replicas === "same");
  if (same.length === 0 || !/\bsum\b/.test(expr) || /\bmax\b/.test(expr)) return [];
  return [`${where} uses ${same.join(", ")} (the same on every replica) without max`];
}

/** Families that need a setting besides CODER_PROMETHEUS_ENABLE must name it. */
function settingProblems(where: string, expr: string, text: string): string[] {
  const problems: string[] = [];
  for (const n of metricNames(expr)) {
    const m = catalogByName.get(n);
    if (m && m.enabledBy !== "always" && !text.includes(m.enabledBy))
      problems.push(`${where} uses ${n} but does not say it needs ${m.enabledBy}`);
  }
  return problems;
}

// Labels a query may use on a Coder metric: its own (catalogue), le on histogram
// buckets, and the target labels Prometheus Operator adds when scraping.
const targetLabels = ["namespace", "pod", "job", "instance", "service", "container", "endpoint"];
const catalogLabels = new Map<string, Set<string>>();
for (const m of CATALOG) {
  catalogLabels.set(m.name, new Set([...m.labels, ...targetLabels]));
  if (m.type === "histogram")
    catalogLabels.set(`${m.name}_bucket`, new Set([...m.labels, ...targetLabels, "le"]));
}

/** Labels used on Coder metrics that those metrics do not have (in matchers and by/without). */
function unknownLabels(expr: string): string[] {
  const plain = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const problems: string[] = [];
  const metrics = metricNames(expr).filter((n) => catalogLabels.has(n));
  for (const m of plain.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    const allowed = catalogLabels.get(m[1]!);
    if (!allowed) continue;
    for (const l of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g))
      if (!allowed.has(l[1]!)) problems.push(`${m[1]}{${l[1]}}`);
  }
  if (metrics.length === 0) return problems;
  const union = new Set(metrics.flatMap((n) => [...(catalogLabels.get(n) ?? [])]));
  for (const g of plain.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g))
    for (const l of g[1]!
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean))
      if (!union.has(l)) problems.push(`by (${l}) over ${metrics.join(", ")}`);
  return problems;
}

describe("chart: alert rules", () => {
  test("the PrometheusRule is off by default", () => {
    assert.equal(find(renderChart(), "PrometheusRule").length, 0);
  });

  test("promtool check rules accepts every rule", () => {
    writeFileSync(join(work, "rules.yaml"), stringify({ groups }));
    const result = promtool(["check", "rules", "rules.yaml"], work);
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, new RegExp(`SUCCESS: ${alertNames.length} rules found`));
  });

  test("promtool test rules: each alert fires when it should and not before (alerts.promtest.yaml)", () => {
    writeFileSync(join(work, "rules.yaml"), stringify({ groups }));
    copyFileSync(
      join(import.meta.dirname, "alerts.promtest.yaml"),
      join(work, "alerts.promtest.yaml"),
    );
    const result = promtool(["test", "rules", "alerts.promtest.yaml"], work);
    assert.equal(result.status, 0, result.output);
  });

  test("every alert has a promtool unit test that expects it to fire", () => {
    const tests = readFileSync(join(import.meta.dirname, "alerts.promtest.yaml"), "utf8");
    for (const name of alertNames)
      assert.match(
        tests,
        new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`),
        `no firing test for ${name}`,
      );
  });

  test("every metric the alerts use is one Coder or coder-metrics exports", () => {
    for (const group of groups)
      for (const rule of group.rules)
        for (const name of metricNames(rule.expr))
          assert.ok(
            known.has(name),
            `${rule.alert} uses ${name}, which is not in controller/coder/catalog.ts`,
          );
  });

  test("every metric the alerts use is served by the Coder releases they claim", () => {
    for (const group of groups)
      for (const rule of group.rules as (RuleGroup["rules"][number] & {
        annotations: Record<string, string>;
      })[])
        assert.deepEqual(
          [
            ...versionProblems(
              `alert ${rule.alert}`,
              rule.expr,
              rule.annotations.coder_versions ?? "",
            ),
            ...replicaProblems(`alert ${rule.alert}`, rule.expr),
            ...settingProblems(
              `alert ${rule.alert}`,
              rule.expr,
              rule.annotations.description ?? "",
            ),
          ],
          [],
        );
  });

  test("every alert links its runbook, a section of the chart README", () => {
    const readme = readFileSync(join(chartDir, "README.md"), "utf8");
    const anchors = new Set(
      [...readme.matchAll(/^#{2,4} (.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, "")
          .replace(/ /g, "-"),
      ),
    );
    for (const group of groups)
      for (const rule of group.rules as (RuleGroup["rules"][number] & {
        annotations: Record<string, string>;
      })[]) {
        const url = rule.annotations.runbook_url ?? "";
        assert.match(url, /README\.md#[a-z0-9-]+$/, `${rule.alert} runbook_url`);
        assert.equal(url.split("#")[1], rule.alert!.toLowerCase(), `${rule.alert} runbook anchor`);
        assert.ok(anchors.has(rule.alert!.toLowerCase()), `README has no section ${rule.alert}`);
      }
  });

  test("every label the alerts use on a Coder metric is one that metric has", () => {
    for (const group of groups)
      for (const rule of group.rules)
        assert.deepEqual(unknownLabels(rule.expr), [], `${rule.alert}`);
  });

  test("every alert has a severity, a summary and a description", () => {
    for (const group of groups)
      for (const rule of group.rules as (RuleGroup["rules"][number] & {
        annotations: Record<string, string>;
      })[]) {
        assert.ok(rule.labels?.severity, `${rule.alert} severity`);
        assert.ok(
          rule.annotations.summary && rule.annotations.description,
          `${rule.alert} annotations`,
        );
      }
  });

  test("disabledAlerts leaves alerts out; additionalAlertLabels and thresholds reach every rule", () => {
    const rule = prometheusRule({
      disabledAlerts: ["CoderAgentsDisconnected", "CoderdAbsent"],
      additionalAlertLabels: { team: "platform" },
      labels: { release: "kube-prometheus-stack" },
      thresholds: { apiErrorRatio: 0.2 },
    });
    assert.equal(rule.metadata.labels?.release, "kube-prometheus-stack");
    const rules = (rule.spec.groups as RuleGroup[]).flatMap((g) => g.rules);
    const names = rules.map((r) => r.alert);
    assert.ok(!names.includes("CoderAgentsDisconnected") && !names.includes("CoderdAbsent"));
    assert.equal(names.length, alertNames.length - 2);
    for (const r of rules) assert.equal(r.labels?.team, "platform", `${r.alert}`);
    const errorRate = rules.find((r) => r.alert === "CoderdAPIErrorRateHigh");
    assert.match(errorRate?.expr ?? "", />\s*0\.2$/);
  });

  test("coderdTargetSelector is what `up` is matched with", () => {
    const rules = (
      prometheusRule({ coderdTargetSelector: 'service="coder-prom", namespace="coder"' }).spec
        .groups as RuleGroup[]
    ).flatMap((g) => g.rules);
    const absent = rules.find((r) => r.alert === "CoderdAbsent");
    assert.equal(absent?.expr, 'absent(up{service="coder-prom", namespace="coder"})');
  });
});

describe("chart: dashboards", () => {
  const dashboardDir = join(chartDir, "files/dashboards");
  const dashboards = readdirSync(dashboardDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => ({ file: f, json: JSON.parse(readFileSync(join(dashboardDir, f), "utf8")) }));

  interface Panel {
    title: string;
    type: string;
    description?: string;
    targets?: { expr: string }[];
    panels?: Panel[];
  }
  const queries = dashboards.flatMap(({ file, json }) => {
    const panels: Panel[] = json.panels.flatMap((p: Panel) => [p, ...(p.panels ?? [])]);
    const text = (p: Panel) => `${p.description ?? ""} ${json.description ?? ""}`;
    return [
      ...panels.flatMap((p) =>
        (p.targets ?? []).map((t) => ({
          where: `${file}: panel "${p.title}"`,
          expr: t.expr,
          claim: p.description ?? "",
          text: text(p),
        })),
      ),
      ...json.templating.list
        .filter((v: { type: string }) => v.type === "query")
        .map((v: { name: string; query: { query: string } }) => ({
          where: `${file}: variable ${v.name}`,
          expr: v.query.query,
          claim: "",
          text: json.description ?? "",
        })),
    ];
  });
  // Grafana's variables, replaced by what they stand for at query time.
  const concrete = (expr: string) =>
    expr.replace(/\$__(rate_interval|interval|range)/g, "5m").replace(/\$\{?([a-z_]+)\}?/g, ".*");
  const labelValuesMetric = (expr: string) =>
    expr.replace(/^label_values\(([a-zA-Z0-9_:]+)(\{.*\})?,\s*\w+\)$/, "$1$2");
  const promql = queries.filter((q) => !q.expr.startsWith("label_values("));

  test("there are dashboards with queries", () => {
    assert.ok(dashboards.length >= 1 && promql.length >= 20);
  });

  test("every panel query parses (promtool check rules, one recording rule each)", () => {
    const rules = {
      groups: [
        {
          name: "dashboards",
          rules: promql.map((q, i) => ({ record: `dashboard_query_${i}`, expr: concrete(q.expr) })),
        },
      ],
    };
    writeFileSync(join(work, "dashboards.yaml"), stringify(rules));
    const result = promtool(["check", "rules", "dashboards.yaml"], work);
    assert.equal(result.status, 0, result.output);
  });

  test("every metric the dashboards use is one Coder or coder-metrics exports", () => {
    for (const q of queries) {
      for (const name of metricNames(concrete(labelValuesMetric(q.expr))))
        assert.ok(
          known.has(name),
          `${q.where} uses ${name}, which is not in controller/coder/catalog.ts`,
        );
    }
  });

  test("every metric a panel uses is served by the Coder releases it claims (else its description says which it needs)", () => {
    const problems = queries.flatMap((q) =>
      versionProblems(q.where, concrete(labelValuesMetric(q.expr)), q.claim),
    );
    assert.deepEqual(problems, []);
  });

  test("families every replica serves alike are aggregated with max; agent-stats families say what they need", () => {
    const problems = queries.flatMap((q) => {
      const expr = concrete(labelValuesMetric(q.expr));
      return [
        ...(q.expr.startsWith("label_values(") ? [] : replicaProblems(q.where, expr)),
        ...settingProblems(q.where, expr, q.text),
      ];
    });
    assert.deepEqual(problems, []);
  });

  test("the namespace variables read a family every coderd serves", () => {
    for (const q of queries.filter((x) => x.where.endsWith("variable namespace"))) {
      const [name] = metricNames(labelValuesMetric(q.expr));
      if (name?.startsWith("coder_metrics_")) continue; // coder-metrics' own dashboard
      const m = catalogByName.get(name ?? "");
      assert.ok(m, `${q.where}: ${q.expr}`);
      assert.ok(
        m.origin === "coderd" &&
          m.enabledBy === "always" &&
          m.when === undefined &&
          releaseRank(m.since) <= releaseRank(OLDEST_SUPPORTED),
        `${q.where} reads ${m.name} (since ${m.since}${m.when ? `, only with ${m.when}` : ""}): not every coderd serves it`,
      );
    }
  });

  test("every label the dashboards use on a Coder metric is one that metric has", () => {
    for (const q of promql) assert.deepEqual(unknownLabels(concrete(q.expr)), [], q.where);
  });

  test("every panel reads the datasource variable, so the dashboard works with any Prometheus", () => {
    for (const { file, json } of dashboards)
      for (const p of json.panels as (Panel & { datasource?: { uid: string } })[])
        if (p.type !== "row")
          // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
          assert.equal(p.datasource?.uid, "${datasource}", `${file}: ${p.title}`);
  });
});

test("unknownLabels spots a label the metric does not have", () => {
  assert.deepEqual(
    unknownLabels(
      'sum by (workspace_transition) (rate(coderd_template_workspace_build_duration_seconds_bucket{status="failed"}[5m]))',
    ),
    ["by (workspace_transition) over coderd_template_workspace_build_duration_seconds_bucket"],
  );
  assert.deepEqual(unknownLabels('coderd_agents_up{username="a", colour="b"}'), [
    "coderd_agents_up{colour}",
  ]);
});

test("metricNames finds metric names and nothing else", () => {
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.95, sum by (le, path) (rate(coderd_api_request_latencies_seconds_bucket{path!~"a|b"}[5m]))) > on (namespace) group_left up',
    ),
    ["coderd_api_request_latencies_seconds_bucket", "up"],
  );
});
