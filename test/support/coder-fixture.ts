// A realistic coderd /metrics payload for N workspaces, generated from the
// catalogue for one Coder release: the families that release serves with the
// given settings (agent-forwarded families only with agent stats on, as coderd
// registers its metrics aggregator only then), the label values coderd really
// uses and the families' real bucket bounds. Deterministic for a seed, laid out
// as client_golang's promhttp writes it (families sorted by name, HELP then
// TYPE, labels sorted, Go float formatting). Used by tests, the coderd
// stand-in and the benchmark.
import {
  CATALOG,
  type CatalogMetric,
  type CoderVersion,
  DEFAULT_BUCKETS,
  LATEST_RELEASE,
  presentIn,
} from "../../controller/coder/catalog.ts";
import { formatGoFloat } from "../../controller/exporter/serialize/serialize.ts";

export interface FixtureOptions {
  workspaces: number;
  seed?: number;
  /** The Coder release whose families are served (default: the newest release). */
  version?: CoderVersion;
  /** CODER_PROMETHEUS_COLLECT_AGENT_STATS (default true). */
  agentStats?: boolean;
  /** CODER_PROMETHEUS_COLLECT_DB_METRICS (default true). */
  dbMetrics?: boolean;
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Workspace {
  index: number;
  name: string;
  owner: string;
  template: string;
  version: string;
  node: string;
}

export function templatesFor(workspaces: number): number {
  return Math.min(25, Math.max(1, Math.ceil(workspaces / 50)));
}

/** The families a coderd of `options` serves, sorted by name as promhttp writes them. */
export function fixtureFamilies(options: Omit<FixtureOptions, "workspaces" | "seed">) {
  const version = options.version ?? LATEST_RELEASE;
  return CATALOG.filter((m) => {
    if (!presentIn(m, version) || m.olderAgentsOnly || m.namePattern) return false;
    if (m.enabledBy === "CODER_PROMETHEUS_COLLECT_AGENT_STATS") return options.agentStats !== false;
    if (m.enabledBy === "CODER_PROMETHEUS_COLLECT_DB_METRICS") return options.dbMetrics !== false;
    return true;
  }).sort((a, b) => (a.name < b.name ? -1 : 1));
}

function workspaceList(n: number, rand: () => number): Workspace[] {
  const templates = templatesFor(n);
  const out: Workspace[] = [];
  for (let i = 0; i < n; i++) {
    const t = i % templates;
    out.push({
      index: i,
      name: `ws-${String(i).padStart(5, "0")}`,
      owner: `user${String(Math.floor(i / 2)).padStart(5, "0")}`,
      template: `template-${t}`,
      version: `v${1 + (t % 3)}`,
      node: Math.floor(rand() * 2 ** 52).toString(16),
    });
  }
  return out;
}

const IDENTITY = new Set([
  "template_name",
  "template_version",
  "username",
  "workspace_owner",
  "workspace_name",
  "agent_name",
  "tailnet_node",
]);

/** Labels that say which workspace, owner or template a series is about. */
function identityLabel(label: string, w: Workspace): string | undefined {
  switch (label) {
    case "template_name":
      return w.template;
    case "template_version":
      return w.version;
    case "username":
    case "workspace_owner":
      return w.owner;
    case "workspace_name":
      return w.name;
    case "agent_name":
      return "main";
    case "tailnet_node":
      return w.node;
    default:
      return undefined;
  }
}

/** Values of labels the catalogue gives none for. */
const FALLBACK: Record<string, readonly string[]> = {
  organization_name: ["coder"],
  preset_name: ["default"],
  provider: ["anthropic"],
  model: ["claude-sonnet-4"],
  method: ["GET"],
  route: ["/v1/messages"],
  endpoint: ["/v1/messages"],
  status: ["success"],
  type: ["input"],
  name: ["coder_list_templates"],
  server: ["https://coder.example.com/api/experimental/mcp/http"],
  reason: ["interval"],
  code: ["200"],
  version: ["go1.24.4"],
  revision: ["0a5b7f2c9d1e"],
  app_name: ["code-server"],
  derp_region: ["Coder Embedded Relay"],
  preferred: ["true"],
};

function valuesOf(m: CatalogMetric, label: string): readonly string[] {
  return m.values?.[label] ?? FALLBACK[label] ?? ["unknown"];
}

/**
 * The value a state label has for most workspaces (an agent is in one state
 * at a time); every 20th workspace takes another one of the catalogue's values.
 */
const TYPICAL = [
  "connected",
  "ready",
  "succeeded",
  "success",
  "healthy",
  "start",
  "START",
  "true",
  "active",
];

function stateValue(values: readonly string[], index: number): string {
  const typical = values.find((v) => TYPICAL.includes(v)) ?? values[0]!;
  if (index % 20 !== 0 || values.length === 1) return typical;
  return values[(index / 20 + 1) % values.length]!;
}

/** Every combination of the values of `labels` (one entry per series). */
function combinations(m: CatalogMetric, labels: readonly string[]): string[][] {
  let sets: string[][] = [[]];
  for (const l of labels) {
    const next: string[][] = [];
    for (const s of sets) for (const v of valuesOf(m, l)) next.push([...s, v]);
    sets = next;
  }
  return sets;
}

/** Label value sets of a family: one entry per series (or per histogram/summary). */
function labelSets(
  m: CatalogMetric,
  ws: Workspace[],
  templates: number,
  version: CoderVersion,
): string[][] {
  if (m.name === "coderd_build_info") return [[BUILD_REVISION, BUILD_VERSIONS[version]]];
  switch (m.scope) {
    case "workspace": {
      const own = m.labels.filter((l) => !IDENTITY.has(l));
      // Forwarded families and counters have one series per value combination
      // seen so far; coderd's per-workspace gauges describe one current state.
      const perCombination = m.origin === "agent" || m.type !== "gauge";
      const out: string[][] = [];
      for (const w of ws) {
        if (m.sparse && w.index % 20 !== 7) continue;
        const combos = perCombination
          ? combinations(m, own)
          : [own.map((l) => stateValue(valuesOf(m, l), w.index))];
        for (const c of combos) {
          let k = 0;
          out.push(m.labels.map((l) => identityLabel(l, w) ?? c[k++]!));
        }
      }
      return out;
    }
    case "owner": {
      const seen = new Set<string>();
      const out: string[][] = [];
      for (const w of ws) {
        if (seen.has(w.owner)) continue;
        seen.add(w.owner);
        out.push(m.labels.map((l) => identityLabel(l, w) ?? stateValue(valuesOf(m, l), w.index)));
      }
      return out;
    }
    case "template": {
      const own = m.labels.filter((l) => l !== "template_name" && l !== "template_version");
      const out: string[][] = [];
      for (let t = 0; t < templates; t++) {
        for (const c of combinations(m, own)) {
          let k = 0;
          out.push(
            m.labels.map((l) =>
              l === "template_name"
                ? `template-${t}`
                : l === "template_version"
                  ? `v${1 + (t % 3)}`
                  : c[k++]!,
            ),
          );
        }
      }
      return out;
    }
    case "global":
      return combinations(m, m.labels);
  }
}

const BUILD_REVISION = "0a5b7f2c9d1e";
const BUILD_VERSIONS: Record<CoderVersion, string> = {
  "v2.33": "v2.33.4+0a5b7f2",
  "v2.34": "v2.34.5+0a5b7f2",
  "v2.35": "v2.35.2+0a5b7f2",
  main: "v2.36.0-devel+0a5b7f2",
};

function escapeValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

function labelText(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  let s = "{";
  for (let i = 0; i < names.length; i++) {
    if (i > 0) s += ",";
    s += `${names[i]}="${escapeValue(values[i]!)}"`;
  }
  return `${s}}`;
}

/** Generates the payload. */
export function generateFixture(options: FixtureOptions): string {
  const rand = rng(options.seed ?? 1);
  const ws = workspaceList(options.workspaces, rand);
  const templates = templatesFor(options.workspaces);
  const version = options.version ?? LATEST_RELEASE;
  const parts: string[] = [];
  for (const m of fixtureFamilies(options)) {
    let s = `# HELP ${m.name} ${m.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${m.name} ${m.type}\n`;
    for (const values of labelSets(m, ws, templates, version)) {
      if (m.type === "histogram") {
        s += histogram(m, values, rand);
      } else if (m.type === "summary") {
        s += summary(m, values, rand);
      } else {
        const v =
          m.name === "coderd_build_info"
            ? 1
            : m.type === "counter"
              ? Math.floor(rand() * 100000)
              : m.name.endsWith("_seconds")
                ? Math.round(rand() * 1e6) / 1e6
                : m.name.endsWith("_bytes")
                  ? Math.floor(rand() * 5e9)
                  : Math.floor(rand() * 10);
        s += `${m.name}${labelText(m.labels, values)} ${formatGoFloat(v)}\n`;
      }
    }
    parts.push(s);
  }
  return parts.join("");
}

function histogram(m: CatalogMetric, values: string[], rand: () => number): string {
  const names = [...m.labels, "le"];
  let count = 0;
  let s = "";
  for (const b of m.buckets ?? DEFAULT_BUCKETS) {
    count += Math.floor(rand() * 20);
    s += `${m.name}_bucket${labelText(names, [...values, formatGoFloat(b)])} ${count}\n`;
  }
  count += Math.floor(rand() * 3);
  s += `${m.name}_bucket${labelText(names, [...values, "+Inf"])} ${count}\n`;
  const sum = Math.round(rand() * count * 1000) / 1000;
  s += `${m.name}_sum${labelText(m.labels, values)} ${formatGoFloat(sum)}\n`;
  s += `${m.name}_count${labelText(m.labels, values)} ${count}\n`;
  return s;
}

function summary(m: CatalogMetric, values: string[], rand: () => number): string {
  const names = [...m.labels, "quantile"];
  let s = "";
  let q = 0;
  for (const quantile of ["0", "0.25", "0.5", "0.75", "1"]) {
    q += rand() * 1e-4;
    s += `${m.name}${labelText(names, [...values, quantile])} ${formatGoFloat(q)}\n`;
  }
  s += `${m.name}_sum${labelText(m.labels, values)} ${formatGoFloat(Math.round(rand() * 1e4) / 1e3)}\n`;
  s += `${m.name}_count${labelText(m.labels, values)} ${Math.floor(rand() * 1e5)}\n`;
  return s;
}
