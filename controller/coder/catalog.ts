// The metric families a Coder control plane (coderd) serves on its Prometheus
// endpoint, for the three newest Coder minor releases and main (VERSIONS), as
// plain data: catalog.json holds one entry per family, this file types it and
// answers the questions the rest of the project asks of it. The exporter's
// presets, the test fixture and the Coder stand-in, the chart's dashboard and
// alert checks and docs/metrics.md all read this one list.
//
// Where the facts come from (facts, never code): coder/coder's generated
// metrics table (docs/admin/integrations/prometheus.md and
// scripts/metricsdocgen on main), the Go sources that register each collector,
// coder/tailscale's clientmetrics (the agent forwards them), and the pull
// requests that added or removed each family.
//
// How `since` was established: Coder cuts every release from main, so a family
// first ships in the first release cut after the pull request that added it
// was merged; `since` is that release, from the merge date and the release
// calendar (v2.31 2026-02-23, v2.32 2026-04-14, v2.33 2026-05-05, v2.34
// 2026-06-02, v2.35 2026-07-07). Git tags were not readable, so a family
// merged within days of a release is a best estimate and its `notes` say so.
// `<=vX` means "already in vX" (`<=v2.0`: in Coder v2.0, August 2023;
// `<=v2.32`: older than the covered releases, exact release not pinned).
// `until` is the first release without the family.
//
// Fields of a family (catalog.json):
//   name, type, help, labels   as coderd serves them (labels sorted, as client_golang writes them);
//   enabledBy                  the coderd setting that must be on besides CODER_PROMETHEUS_ENABLE;
//   origin                     "coderd" (its own collectors), "runtime" (client_golang's Go,
//                              process, DB-pool and promhttp collectors) or "agent": families
//                              workspace agents send with their stats, re-exported by coderd's
//                              metrics aggregator only with CODER_PROMETHEUS_COLLECT_AGENT_STATS,
//                              with the agent's TYPE (counter or gauge), the HELP "Metrics are
//                              forwarded from workspace agents connected to this instance of
//                              coderd.", and the labels of CODER_PROMETHEUS_AGGREGATE_AGENT_STATS_BY
//                              (default agent_name, template_name, username, workspace_name) plus
//                              their own; each replica serves the agents connected to it, and a
//                              series goes 2 minutes after its agent stops reporting;
//   since, until, deprecated   versions (above); deprecated.since is when Coder deprecated it;
//   when                       a condition besides settings (license, feature in use);
//   replicas: "same"           computed from the database by every coderd replica, so each
//                              replica serves the same value: aggregate with max, never sum;
//   perTemplate: "max"         per_template keeps the highest value (latencies) instead of summing;
//   olderAgentsOnly            sent only by older workspace agents that still connect;
//   namePattern                a name with <placeholders> tailscale fills in at run time;
//   scope, values, sparse      the fixture's shape: one label set per workspace agent, per
//                              workspace owner, per template or global; the label values coderd
//                              really uses; sparse = only some agents have the series (error
//                              counters exist once something went wrong);
//   buckets                    histogram upper bounds (without +Inf) where the source sets them;
//                              client_golang's default buckets otherwise;
//   source, notes              where in Coder's sources, and caveats.
import families from "./catalog.json" with { type: "json" };

/** The Coder releases the catalogue covers, oldest first. */
export const VERSIONS = ["v2.33", "v2.34", "v2.35", "main"] as const;
export type CoderVersion = (typeof VERSIONS)[number];
/** The newest release (what the stand-in serves by default). */
export const LATEST_RELEASE: CoderVersion = "v2.35";

export type CatalogType = "counter" | "gauge" | "histogram" | "summary";
export type Setting =
  | "always"
  | "CODER_PROMETHEUS_COLLECT_AGENT_STATS"
  | "CODER_PROMETHEUS_COLLECT_DB_METRICS";
export type Origin = "coderd" | "runtime" | "agent";
export type Scope = "global" | "template" | "owner" | "workspace";

export interface CatalogMetric {
  name: string;
  type: CatalogType;
  help: string;
  labels: readonly string[];
  enabledBy: Setting;
  origin: Origin;
  /** First release with the family: "v2.33", or "<=v2.32" when only known to be older. */
  since: string;
  /** First release without it. */
  until?: string;
  deprecated?: { replacement: string; since: string };
  when?: string;
  replicas?: "same";
  perTemplate?: "max";
  olderAgentsOnly?: boolean;
  namePattern?: boolean;
  scope: Scope;
  values?: Readonly<Record<string, readonly string[]>>;
  sparse?: boolean;
  buckets?: readonly number[];
  source: string;
  notes?: string;
}

export const CATALOG: readonly CatalogMetric[] = families as readonly CatalogMetric[];

/** client_golang's prometheus.DefBuckets: what a histogram without its own buckets uses. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The HELP coderd gives every agent-forwarded family. */
export const FORWARDED_HELP =
  "Metrics are forwarded from workspace agents connected to this instance of coderd.";

/**
 * Labels that make a series per workspace, agent or person. The per_template
 * preset aggregates every family carrying one of them, known to this
 * catalogue or not (each Coder release adds some).
 */
export const PER_WORKSPACE_LABELS = [
  "agent_name",
  "agent_id",
  "workspace_name",
  "workspace_id",
  "workspace_owner",
  "username",
  "owner_email",
  "email",
  "initiator_id",
  "tailnet_node",
] as const;

/** What per_template removes from the families it aggregates. */
export const PER_TEMPLATE_REMOVED_LABELS = [...PER_WORKSPACE_LABELS, "template_version"] as const;

/** Labels whose values identify a person: the PII defaults (hash or drop them). */
export const PII_LABELS = [
  "username",
  "workspace_owner",
  "owner_email",
  "email",
  "initiator_id",
] as const;

/** Release order: "v2.33" → 2033, "<=v2.32" → 2032, "main" → after every release. */
export function releaseRank(version: string): number {
  if (version === "main") return Number.POSITIVE_INFINITY;
  const m = /^(?:<=)?v(\d+)\.(\d+)$/.exec(version);
  if (m === null) throw new Error(`not a Coder release: ${JSON.stringify(version)}`);
  return Number(m[1]) * 1000 + Number(m[2]);
}

/** Whether coderd `version` serves the family (when its setting and condition hold). */
export function presentIn(m: CatalogMetric, version: CoderVersion): boolean {
  const at = releaseRank(version);
  return releaseRank(m.since) <= at && (m.until === undefined || at < releaseRank(m.until));
}

/** The covered releases that serve the family. */
export function versionsOf(m: CatalogMetric): CoderVersion[] {
  return VERSIONS.filter((v) => presentIn(m, v));
}

/** Deprecated families and what replaces each. */
export function deprecatedMetrics(): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of CATALOG) if (m.deprecated) out.set(m.name, m.deprecated.replacement);
  return out;
}

/**
 * The deprecated families the drop_deprecated preset drops: those whose
 * replacement every covered release serves, so dropping never loses data on
 * any of them (an alias deprecated in v2.35 stays until v2.34 leaves the window).
 */
export function droppableDeprecated(): string[] {
  const byName = new Map(CATALOG.map((m) => [m.name, m]));
  return CATALOG.filter((m) => {
    const replacement = m.deprecated && byName.get(m.deprecated.replacement);
    return replacement !== undefined && VERSIONS.every((v) => presentIn(replacement, v));
  }).map((m) => m.name);
}
