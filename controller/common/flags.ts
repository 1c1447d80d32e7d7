// Command-line flags for every subcommand: `--name value`, `--name=value`,
// `-x value` where a spec has a short form, and positionals where a command
// takes them. A flag can also come from the environment: its own `env`
// variable, or `<envPrefix><NAME>` (upper case, dashes → underscores). Flags
// win over the environment, the environment over defaults.

export interface FlagSpec {
  name: string;
  help: string;
  default?: string;
  /** A boolean switch (no value). */
  bool?: boolean;
  /** One-letter alias, e.g. "n" for -n. */
  short?: string;
  /** The environment variable that sets it, when not `<envPrefix><NAME>`. */
  env?: string;
}

export type FlagValues = Record<string, string | undefined>;

export interface FlagOptions {
  env?: NodeJS.ProcessEnv;
  /** Every flag without its own `env` reads `<envPrefix><NAME>`. */
  envPrefix?: string;
  /** Arguments that are not flags are returned instead of refused. */
  positionals?: boolean;
}

export class UsageError extends Error {
  override name = "UsageError";
}

export function envName(flag: string, prefix: string): string {
  return prefix + flag.toUpperCase().replace(/-/g, "_");
}

function envOf(spec: FlagSpec, options: FlagOptions): string | undefined {
  if (spec.env !== undefined) return spec.env;
  return options.envPrefix === undefined ? undefined : envName(spec.name, options.envPrefix);
}

/** Parses `args`; throws UsageError. `--help`/`-h` sets values.help = "true". */
export function parseCommandLine(
  args: readonly string[],
  specs: readonly FlagSpec[],
  options: FlagOptions = {},
): { values: FlagValues; positionals: string[] } {
  const env = options.env ?? process.env;
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.flatMap((s) => (s.short ? [[s.short, s] as const] : [])));
  const values: FlagValues = {};
  const positionals: string[] = [];
  for (const s of specs) {
    const variable = envOf(s, options);
    values[s.name] = (variable === undefined ? undefined : env[variable]) ?? s.default;
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      values.help = "true";
      continue;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      spec = byName.get(name);
      if (spec === undefined) throw new UsageError(`unknown flag --${name}`);
      if (eq >= 0) inline = arg.slice(eq + 1);
    } else if (/^-[A-Za-z]$/.test(arg)) {
      spec = byShort.get(arg.slice(1));
      if (spec === undefined) throw new UsageError(`unknown flag ${arg}`);
    } else if (options.positionals && (!arg.startsWith("-") || arg === "-")) {
      positionals.push(arg);
      continue;
    } else {
      throw new UsageError(`unexpected argument "${arg}"`);
    }
    if (spec.bool) {
      values[spec.name] = inline ?? "true";
      continue;
    }
    if (inline === undefined) {
      inline = args[++i];
      if (inline === undefined) throw new UsageError(`flag --${spec.name} needs a value`);
    }
    values[spec.name] = inline;
  }
  return { values, positionals };
}

/** Flags only: a positional argument is a usage error. */
export function parseFlags(
  args: readonly string[],
  specs: readonly FlagSpec[],
  options: Omit<FlagOptions, "positionals"> = {},
): FlagValues {
  return parseCommandLine(args, specs, options).values;
}

/** `usage: coder-metrics <command> …` with each flag, its default and its variable. */
export function usage(
  command: string,
  summary: string,
  specs: readonly FlagSpec[],
  options: { envPrefix?: string; synopsis?: string } = {},
): string {
  const lines = specs.map((s) => {
    const name = `${s.short ? `-${s.short}, ` : ""}--${s.name}`;
    const dflt = s.default !== undefined && s.default !== "" ? ` (default ${s.default})` : "";
    const variable = envOf(s, options);
    const envLine = variable === undefined ? "" : `\n  ${"".padEnd(26)} env ${variable}`;
    return `  ${name.padEnd(26)} ${s.help}${dflt}${envLine}`;
  });
  const synopsis = options.synopsis ?? "[flags]";
  return `usage: coder-metrics ${command} ${synopsis}\n\n${summary}\n\nflags:\n${lines.join("\n")}\n`;
}
