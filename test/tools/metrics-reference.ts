// Renders docs/metrics.md from the one Coder metric catalogue (the same list
// the fixture generator and the exporter's presets read): every family, the
// Coder releases that serve it, and what each exporter preset does to it.
// `make generate` writes it; a unit test fails when it drifts.
import {
  CATALOG,
  type CatalogMetric,
  PER_WORKSPACE_LABELS,
  PII_LABELS,
  presentIn,
  VERSIONS,
} from "../../controller/coder/catalog.ts";
import {
  aggregateRuleFor,
  type ExporterConfig,
  parseExporterConfig,
} from "../../controller/exporter/config/config.ts";
import { keepsCounterState } from "../../controller/exporter/aggregate/counter-state.ts";

function preset(name: string): ExporterConfig {
  const parsed = parseExporterConfig(`presets: [${name}]\n`);
  if (!parsed.ok)
    throw new Error(`preset ${name}: ${parsed.errors.map((e) => e.message).join("; ")}`);
  return parsed.config;
}

const code = (s: string) => `\`${s}\``;

function perTemplateEffect(config: ExporterConfig, metric: CatalogMetric): string {
  const rule = aggregateRuleFor(config.aggregate, metric.name, () => metric.labels);
  if (rule === undefined) return "kept";
  const removed = metric.labels.filter((l) =>
    rule.by ? !rule.by.includes(l) : (rule.without ?? []).includes(l),
  );
  const op = keepsCounterState(metric.type, rule) ? `${rule.op} (running total)` : rule.op;
  return `${op} without ${removed.map(code).join(", ")}`;
}

const settingText: Record<CatalogMetric["enabledBy"], string> = {
  always: "always",
  CODER_PROMETHEUS_COLLECT_AGENT_STATS: "`…_COLLECT_AGENT_STATS`",
  CODER_PROMETHEUS_COLLECT_DB_METRICS: "`…_COLLECT_DB_METRICS`",
};

function remarks(m: CatalogMetric): string {
  const out: string[] = [];
  if (m.deprecated)
    out.push(`deprecated (${m.deprecated.since}) → ${code(m.deprecated.replacement)}`);
  if (m.until) out.push(`removed in ${m.until}`);
  if (m.olderAgentsOnly) out.push("older agents only");
  if (m.namePattern) out.push("name filled in at run time");
  if (m.replicas === "same") out.push("same on every replica (use max)");
  if (m.when) out.push(`only with ${m.when}`);
  return out.join("; ");
}

function table(
  metrics: readonly CatalogMetric[],
  dropDeprecated: ExporterConfig,
  perTemplate: ExporterConfig,
): string {
  const head = [
    "metric",
    "type",
    "labels",
    "enabled by",
    "since",
    ...VERSIONS,
    "remarks",
    "drop_deprecated",
    "per_template",
  ];
  const rows = [...metrics]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((m) => {
      const cells = [
        code(m.name),
        m.type,
        m.labels.length ? m.labels.map(code).join(", ") : "—",
        settingText[m.enabledBy],
        m.since,
        ...VERSIONS.map((v) => (presentIn(m, v) ? "✓" : "—")),
        remarks(m),
        dropDeprecated.dropMetrics.matches(m.name) ? "dropped" : "kept",
        perTemplateEffect(perTemplate, m),
      ];
      return `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
    });
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows].join(
    "\n",
  );
}

export function metricsReference(): string {
  const dropDeprecated = preset("drop_deprecated");
  const perTemplate = preset("per_template");
  const section = (origin: CatalogMetric["origin"]) =>
    table(
      CATALOG.filter((m) => m.origin === origin),
      dropDeprecated,
      perTemplate,
    );
  return `<!-- Generated from controller/coder/catalog.ts by \`make generate\`; do not edit. -->
# Coder metrics reference

The metric families coderd serves on \`CODER_PROMETHEUS_ADDRESS\` once
\`CODER_PROMETHEUS_ENABLE=true\` (Coder's Helm chart sets the address to \`0.0.0.0:2112\`),
for the Coder releases ${VERSIONS.slice(0, -1).join(", ")} and main, and what the coder-metrics
exporter's presets do to each. coderd answers in the Prometheus text format
(\`text/plain; version=0.0.4; charset=utf-8; escaping=underscores\`), never OpenMetrics.

- **since** is the first Coder release with the family, worked out from the merge date of the
  pull request that added it and Coder's release calendar (releases are cut from main);
  \`<=vX\` means "already in vX". The columns ${VERSIONS.map(code).join(", ")} say which
  of the covered releases serve it. Panels and alerts of the chart say in their description
  when they need a newer release.
- **enabled by**: \`always\` means with \`CODER_PROMETHEUS_ENABLE\` alone;
  \`…_COLLECT_AGENT_STATS\` is \`CODER_PROMETHEUS_COLLECT_AGENT_STATS\`
  (\`spec.coder.collectAgentStats\`), \`…_COLLECT_DB_METRICS\` is
  \`CODER_PROMETHEUS_COLLECT_DB_METRICS\` (\`spec.coder.collectDBMetrics\`).
- **drop_deprecated** drops the families Coder has deprecated whose replacement every covered
  release serves (so no release loses data).
- **per_template** aggregates every family whose series carry a per-workspace label
  (${PER_WORKSPACE_LABELS.map(code).join(", ")}) — by labels, so families this list does not
  know yet are aggregated too — away from those labels and \`template_version\`: \`max\` for
  latencies, \`sum\` otherwise. It cuts cardinality from O(workspaces) to O(templates) and
  leaves no user name in clear. Summed counters and histograms are running totals that stay
  counters when workspaces stop or agents restart (no false resets in \`rate()\`/\`increase()\`).
- Labels whose values identify a person: ${PII_LABELS.map(code).join(", ")}. Without
  \`per_template\`, hash or drop them with \`spec.exporter.config.pii\` (\`hashLabels\`,
  \`dropLabels\`); the exporter applies that to every family carrying them.

Enable presets in a CoderMetrics with \`spec.exporter.config.presets: [drop_deprecated, per_template]\`.
The exporter also serves its own \`coder_metrics_exporter_*\` metrics (upstream up, scrape duration,
series in/out/dropped); see \`coder-metrics exporter --help\`.

## coderd's own families

${section("coderd")}

## Forwarded from workspace agents

Only with \`CODER_PROMETHEUS_COLLECT_AGENT_STATS=true\`: workspace agents send these with their
stats and coderd re-exports them with the agents' own type (counter or gauge), the HELP
"Metrics are forwarded from workspace agents connected to this instance of coderd.", and the
labels of \`CODER_PROMETHEUS_AGGREGATE_AGENT_STATS_BY\` (default \`agent_name\`,
\`template_name\`, \`username\`, \`workspace_name\`) plus their own. Every agent sends every
family (the tailscale ones included), so they are most of a large deployment's series; each
coderd replica serves the agents connected to it.

${section("agent")}

## Go runtime, process, database pool and promhttp (client_golang)

${section("runtime")}
`;
}

if (import.meta.main) process.stdout.write(metricsReference());
