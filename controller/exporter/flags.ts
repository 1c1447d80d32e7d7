// Command-line flags for `coder-metrics exporter` and `relabel`: `--name value`
// or `--name=value`; every flag can also come from the environment as
// CODER_METRICS_EXPORTER_<NAME> (upper case, dashes → underscores). Flags win
// over the environment.

export interface FlagSpec {
  name: string;
  help: string;
  default?: string;
  /** A boolean switch (no value). */
  bool?: boolean;
}

export type FlagValues = Record<string, string | undefined>;

export class UsageError extends Error {
  override name = "UsageError";
}

export const ENV_PREFIX = "CODER_METRICS_EXPORTER_";

export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replace(/-/g, "_");
}

/** Parses `args`; throws UsageError. `--help` sets values.help = "true". */
export function parseFlags(
  args: readonly string[],
  specs: readonly FlagSpec[],
  env: NodeJS.ProcessEnv = process.env,
): FlagValues {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: FlagValues = {};
  for (const s of specs) out[s.name] = env[envName(s.name)] ?? s.default;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      out.help = "true";
      continue;
    }
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new UsageError(`unknown flag --${name}`);
    if (spec.bool) {
      out[name] = eq < 0 ? "true" : arg.slice(eq + 1);
      continue;
    }
    if (eq >= 0) {
      out[name] = arg.slice(eq + 1);
    } else {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`flag --${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

export function usage(command: string, summary: string, specs: readonly FlagSpec[]): string {
  const lines = specs.map((s) => {
    const dflt = s.default !== undefined && s.default !== "" ? ` (default ${s.default})` : "";
    return `  --${s.name.padEnd(20)} ${s.help}${dflt}\n  ${"".padEnd(22)} env ${envName(s.name)}`;
  });
  return `usage: coder-metrics ${command} [flags]\n\n${summary}\n\nflags:\n${lines.join("\n")}\n`;
}

/** "10s", "500ms", "2m", "1.5" (seconds) → milliseconds. */
export function parseDuration(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (m === null) throw new UsageError(`--${flag}: invalid duration "${v}" (e.g. 10s, 500ms, 1m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  const ms =
    unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n * 3_600_000;
  if (ms <= 0) throw new UsageError(`--${flag}: must be positive`);
  return ms;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1000,
  kb: 1000,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
};

/** "64MiB", "10MB", "1048576" → bytes. */
export function parseSize(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(v.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (m === null || unit === undefined) {
    throw new UsageError(`--${flag}: invalid size "${v}" (e.g. 64MiB, 10MB, 1048576)`);
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0) throw new UsageError(`--${flag}: must be positive`);
  return n;
}

/** "host:port" or ":port" or "[::1]:port" → parts. */
export function parseListen(flag: string, v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v.trim());
  if (m === null) throw new UsageError(`--${flag}: expected host:port, got "${v}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--${flag}: port out of range`);
  return { host: m[1] ?? (m[2] === "" ? "0.0.0.0" : m[2]!), port };
}
