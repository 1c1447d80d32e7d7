// A realistic coderd /metrics payload for N workspaces, generated from the
// catalogue: deterministic for a given seed, laid out as client_golang's
// promhttp writes it (families sorted by name, HELP then TYPE, labels sorted,
// Go float formatting). Used by tests, the coderd stand-in and the benchmark.
import { formatGoFloat } from "../../controller/exporter/serialize/serialize.ts";
import { CATALOG, type CatalogMetric } from "../../controller/coder/catalog.ts";

export interface FixtureOptions {
  workspaces: number;
  seed?: number;
  /** CODER_PROMETHEUS_COLLECT_AGENT_STATS (default true). */
  agentStats?: boolean;
  /** CODER_PROMETHEUS_COLLECT_DB_METRICS (default true). */
  dbMetrics?: boolean;
  /** Include deprecated metrics, as older coderd releases do (default true). */
  deprecated?: boolean;
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

const REGIONS = ["Frankfurt", "New York City", "Sydney", "Tokyo"];

export function templatesFor(workspaces: number): number {
  return Math.min(25, Math.max(1, Math.ceil(workspaces / 50)));
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

/** The value of a per-workspace label. */
function workspaceLabel(label: string, w: Workspace): string {
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
    case "derp_region":
      return REGIONS[w.index % REGIONS.length]!;
    case "lifecycle_state":
      return "ready";
    case "status":
      return w.index % 20 === 0 ? "disconnected" : "connected";
    case "preferred":
    case "success":
      return "true";
    case "app_name":
      return "code-server";
    case "health":
      return "healthy";
    case "connection_type":
      return w.index % 3 === 0 ? "derp" : "p2p";
    case "workspace_transition":
      return "start";
    case "organization_name":
      return "coder";
    default:
      return "unknown";
  }
}

function templateLabel(label: string, template: number): string {
  switch (label) {
    case "template_name":
      return `template-${template}`;
    case "template_version":
      return `v${1 + (template % 3)}`;
    case "organization_name":
      return "coder";
    case "preset_name":
      return "default";
    case "type":
      return "regular";
    case "is_prebuild":
      return "false";
    case "status":
      return "success";
    case "transition":
    case "workspace_transition":
      return "start";
    default:
      return "unknown";
  }
}

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

/** Label value sets of a metric: one entry per series (or per histogram/summary). */
function labelSets(m: CatalogMetric, ws: Workspace[], templates: number): string[][] {
  switch (m.scope) {
    case "workspace":
      return ws.map((w) => m.labels.map((l) => workspaceLabel(l, w)));
    case "owner": {
      const seen = new Set<string>();
      const out: string[][] = [];
      for (const w of ws) {
        if (seen.has(w.owner)) continue;
        seen.add(w.owner);
        out.push(m.labels.map((l) => (l === "status" ? "succeeded" : workspaceLabel(l, w))));
      }
      return out;
    }
    case "template": {
      const out: string[][] = [];
      for (let t = 0; t < templates; t++) out.push(m.labels.map((l) => templateLabel(l, t)));
      return out;
    }
    case "global": {
      let sets: string[][] = [[]];
      for (const l of m.labels) {
        const vals = m.values?.[l] ?? ["default"];
        const next: string[][] = [];
        for (const s of sets) for (const v of vals) next.push([...s, v]);
        sets = next;
      }
      return sets;
    }
  }
}

/** Generates the payload. */
export function generateFixture(options: FixtureOptions): string {
  const rand = rng(options.seed ?? 1);
  const ws = workspaceList(options.workspaces, rand);
  const templates = templatesFor(options.workspaces);
  const metrics = CATALOG.filter((m) => {
    if (m.flag === "CODER_PROMETHEUS_COLLECT_AGENT_STATS" && options.agentStats === false)
      return false;
    if (m.flag === "CODER_PROMETHEUS_COLLECT_DB_METRICS" && options.dbMetrics === false)
      return false;
    if (m.deprecated && options.deprecated === false) return false;
    return true;
  }).sort((a, b) => (a.name < b.name ? -1 : 1));

  const parts: string[] = [];
  for (const m of metrics) {
    let s = `# HELP ${m.name} ${m.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${m.name} ${m.type}\n`;
    for (const values of labelSets(m, ws, templates)) {
      if (m.type === "histogram") {
        s += histogram(m, values, rand);
      } else if (m.type === "summary") {
        s += summary(m, values, rand);
      } else {
        const v =
          m.type === "counter"
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
  const buckets = m.buckets ?? [1];
  const names = [...m.labels, "le"];
  let count = 0;
  let s = "";
  for (const b of buckets) {
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
