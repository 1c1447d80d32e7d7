// Renders docs/metrics.md from the one Coder metric catalogue (the same list
// the fixture generator and the exporter's presets read), with what each
// exporter preset does to each metric. `make generate` writes it; a unit test
// fails when it drifts.
import {
  type ExporterConfig,
  parseExporterConfig,
} from "../../controller/exporter/config/config.ts";
import { CATALOG, type CatalogMetric } from "../../controller/coder/catalog.ts";
import { keepsCounterState } from "../../controller/exporter/aggregate/counter-state.ts";

function preset(name: string): ExporterConfig {
  const parsed = parseExporterConfig(`presets: [${name}]\n`);
  if (!parsed.ok)
    throw new Error(`preset ${name}: ${parsed.errors.map((e) => e.message).join("; ")}`);
  return parsed.config;
}

function perTemplateEffect(config: ExporterConfig, metric: CatalogMetric): string {
  const rule = config.aggregate.find((r) => r.metrics.matches(metric.name));
  if (rule === undefined) return "kept";
  const removed = metric.labels.filter((l) =>
    rule.by ? !rule.by.includes(l) : (rule.without ?? []).includes(l),
  );
  if (removed.length === 0) return "kept (no per-workspace labels)";
  const op = keepsCounterState(metric.type, rule) ? `${rule.op} (running total)` : rule.op;
  return `${op} without ${removed.map((l) => `\`${l}\``).join(", ")}`;
}

const flagText: Record<NonNullable<CatalogMetric["flag"]>, string> = {
  CODER_PROMETHEUS_COLLECT_AGENT_STATS:
    "`CODER_PROMETHEUS_COLLECT_AGENT_STATS` (spec.coder.collectAgentStats)",
  CODER_PROMETHEUS_COLLECT_DB_METRICS:
    "`CODER_PROMETHEUS_COLLECT_DB_METRICS` (spec.coder.collectDBMetrics)",
};

export function metricsReference(): string {
  const dropDeprecated = preset("drop_deprecated");
  const perTemplate = preset("per_template");
  const rows = [...CATALOG]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((m) => {
      const cells = [
        `\`${m.name}\``,
        m.type,
        m.labels.length ? m.labels.map((l) => `\`${l}\``).join(", ") : "—",
        m.flag ? flagText[m.flag] : "always (with `CODER_PROMETHEUS_ENABLE`)",
        m.deprecated ? `deprecated → \`${m.deprecated.replacement}\`` : "",
        dropDeprecated.dropMetrics.matches(m.name) ? "dropped" : "kept",
        perTemplateEffect(perTemplate, m),
      ];
      return `| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
    });
  return `<!-- Generated from controller/coder/catalog.ts by \`make generate\`; do not edit. -->
# Coder metrics reference

The metrics coderd serves on \`CODER_PROMETHEUS_ADDRESS\` (default \`0.0.0.0:2112\`) once
\`CODER_PROMETHEUS_ENABLE=true\`, as listed in Coder's documentation, and what the coder-metrics
exporter's presets do to each:

- **drop_deprecated** drops metrics Coder has deprecated (use the replacement named here).
- **per_template** aggregates the per-workspace agent metrics down to per-template series
  (\`sum\`, or \`max\` for latencies), cutting cardinality from O(workspaces) to O(templates).
  Summed counters and histograms are running totals that stay counters when workspaces stop
  or agents restart (no false resets in \`rate()\`/\`increase()\`).

Enable presets in a CoderMetrics with \`spec.exporter.config.presets: [drop_deprecated, per_template]\`.
The exporter also serves its own \`coder_metrics_exporter_*\` metrics (upstream up, scrape duration,
series in/out/dropped); see \`coder-metrics exporter --help\`.

| metric | type | labels | enabled by | status | drop_deprecated | per_template |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}
`;
}

if (import.meta.main) process.stdout.write(metricsReference());
