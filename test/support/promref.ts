// promref (test/tools/promref): what Prometheus's own Go code — the version
// pinned in test/tools/prometheus/go.mod — does with a payload and rules. The
// differential tests run it on the same inputs as the exporter; see its README
// for the events it prints.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");

let binary: string | undefined;

/** The promref binary, built by go-tools.sh on first use (cached per source digest). */
export function promrefBinary(): string {
  binary ??= join(
    execFileSync(join(ROOT, "test/tools/go-tools.sh"), ["promref"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim(),
    "promref",
  );
  return binary;
}

export type PromLabels = [string, string][];

export type PromEvent =
  | { kind: "help"; name: string; help: string }
  | { kind: "type"; name: string; type: string }
  | { kind: "unit"; name: string; unit: string }
  | {
      kind: "series" | "duplicate" | "out_of_order" | "histogram";
      labels: PromLabels;
      value: string;
      timestamp: number | null;
      reason?: string;
    }
  | {
      kind: "result";
      error: string | null;
      samples_scraped?: number;
      samples_post_metric_relabeling?: number;
      sample_duplicate_timestamp?: number;
    };

/** One case of `promref batch`. */
export interface PromCase {
  mode: "parse" | "relabel";
  /** YAML text of a list of relabel_config entries (relabel mode). */
  rules?: string;
  payload: string | Uint8Array;
  contentType?: string;
  scrapeTimeMs?: number;
}

/** Runs cases through one promref process; the events of each, in order. */
export function promrefBatch(cases: readonly PromCase[]): PromEvent[][] {
  if (cases.length === 0) return [];
  const lines = cases.map((c) => {
    const payload =
      typeof c.payload === "string"
        ? { payload: c.payload }
        : { payload_b64: Buffer.from(c.payload).toString("base64") };
    return JSON.stringify({
      mode: c.mode,
      rules: c.rules ?? "[]",
      ...payload,
      content_type: c.contentType ?? "",
      scrape_time_ms: c.scrapeTimeMs ?? 0,
    });
  });
  const r = spawnSync(promrefBinary(), ["batch"], {
    input: `${lines.join("\n")}\n`,
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`promref batch exited ${r.status}: ${r.stderr}`);
  const out = r.stdout.split("\n").filter((l) => l !== "");
  if (out.length !== cases.length) {
    throw new Error(`promref batch answered ${out.length} of ${cases.length} cases: ${r.stderr}`);
  }
  return out.map((l) => (JSON.parse(l) as { events: PromEvent[] }).events);
}

export interface Negotiated {
  content_type: string;
  format: string;
  escaping: string;
}

/**
 * What expfmt.NegotiateAccept(h, FmtText) — a server that offers only the
 * text format, as the exporter — answers to each Accept header (undefined: none).
 */
export function promrefNegotiate(headers: readonly (string | undefined)[]): Negotiated[] {
  const r = spawnSync(promrefBinary(), ["negotiate", "--text-only", "--stdin"], {
    input: `${headers.map((h) => JSON.stringify(h ?? null)).join("\n")}\n`,
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`promref negotiate exited ${r.status}: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Negotiated);
}

/** model.EscapeName as the expfmt encoder applies it (legacy-valid names stay), per name. */
export function promrefEscape(scheme: string, names: readonly string[]): string[] {
  const r = spawnSync(promrefBinary(), ["escape", "--scheme", scheme, "--as-exposed", ...names], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`promref escape exited ${r.status}: ${r.stderr}`);
  return r.stdout.split("\n").slice(0, names.length);
}

/** Go's strings.ToLower/ToUpper for every code point they change: [cp, lower, upper]. */
export function promrefCasemap(): [number, number, number][] {
  const out = execFileSync(promrefBinary(), ["casemap"], { encoding: "utf8", maxBuffer: 1 << 26 });
  return out
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ").map((h) => Number.parseInt(h, 16)) as [number, number, number]);
}
